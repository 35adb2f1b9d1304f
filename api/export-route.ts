/**
 * GET /api/v1/export: every activity matching the /activities filters, as
 * CSV, NDJSON or a JSON array. It walks keyset pages and writes each one
 * only when the client has taken the last (Readable.from pulls on demand),
 * so memory holds one page whatever the size of the export. Each export,
 * finished or cut short, is itself recorded as an audit activity.
 */
import { Readable } from 'node:stream'
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { parseActivity, type Activity } from '../schemas/activity.ts'
import { ROW_COLUMNS } from '../schemas/activity-row.ts'
import { ActivityRow, readPage, type Cursor } from './activity-pages.ts'
import type { ApiContext } from './context.ts'
import { DimensionFilters, RowFilters, TimeRange, type Filters } from './query-params.ts'
import { route } from './route.ts'

/**
 * Pages are sized by bytes, not rows: a page is held whole at least three
 * times over (the engine's result, its text, the parsed rows), so 5,000
 * rows of 64 KiB details would be a gigabyte. The first page is
 * PAGE_ROWS_MAX rows; each next one aims at PAGE_BYTES from the rows seen.
 * Measured on 1M small rows (test/integration/export-memory): 5,000-row
 * pages 23 s, 1,000-row pages 48 s; on 30 MB of 1 KB rows a 5,000-row page
 * added ~185 MB of resident memory while ingest was running.
 */
const PAGE_ROWS_MAX = 5_000
const PAGE_ROWS_MIN = 100
const PAGE_BYTES = 2 * 1024 * 1024

const FORMATS = {
  csv: { type: 'text/csv; charset=utf-8', extension: 'csv' },
  ndjson: { type: 'application/x-ndjson', extension: 'ndjson' },
  json: { type: 'application/json', extension: 'json' },
} as const

export const ExportQuery = TimeRange.extend(DimensionFilters.shape)
  .extend(RowFilters.shape)
  .extend({ format: z.enum(['csv', 'ndjson', 'json']).default('ndjson') })
  .strict()

/** The CSV header: the row's fields in order (schemas/activity-row.ts). */
const CSV_COLUMNS = ROW_COLUMNS

/**
 * RFC 4180 quoting. A text cell starting with = + - @ is prefixed with a
 * quote so a spreadsheet shows it instead of running it as a formula (CSV
 * injection); the other formats carry values untouched.
 */
function csvCell(value: unknown): string {
  if (value === null || value === undefined) return ''
  if (typeof value === 'number') return String(value)
  let text = typeof value === 'string' ? value : JSON.stringify(value)
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

function render(rows: readonly ActivityRow[], format: keyof typeof FORMATS, first: boolean): string {
  switch (format) {
    case 'ndjson':
      return rows.map((r) => `${JSON.stringify(r)}\n`).join('')
    case 'json':
      return rows.map((r, i) => `${first && i === 0 ? '' : ',\n'}${JSON.stringify(r)}`).join('')
    case 'csv':
      return rows.map((r) => `${CSV_COLUMNS.map((c) => csvCell(r[c])).join(',')}\r\n`).join('')
  }
}

export const exportRoute: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  route(
    app,
    {
      url: '/export',
      scope: 'read',
      query: ExportQuery,
      summary: 'Export activities',
      description: 'Streams every matching activity (same filters as /activities), newest first. Each export is recorded as an audit activity.',
      produces: Object.values(FORMATS).map((f) => f.type),
      response: z.array(ActivityRow).meta({ description: 'format=json; ndjson is one such row per line, csv one per record' }),
    },
    async ({ format, ...filters }, request, reply) => {
      const abort = new AbortController()
      // A client that hangs up stops the page being read; the stream's
      // destruction then ends the generator, whose finally records the audit.
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) abort.abort()
      })
      const stats = { rows: 0, complete: false }
      const who = request.principal?.name ?? 'unknown'
      async function* body(): AsyncGenerator<string> {
        try {
          if (format === 'csv') yield `${CSV_COLUMNS.join(',')}\r\n`
          if (format === 'json') yield '[\n'
          let after: Cursor | undefined
          let pageRows = PAGE_ROWS_MAX
          do {
            const page = await readPage(ctx.clickhouse, filters, pageRows, after, abort.signal)
            if (page.rows.length) {
              const text = render(page.rows, format, stats.rows === 0)
              pageRows = Math.max(PAGE_ROWS_MIN, Math.min(PAGE_ROWS_MAX, Math.floor((PAGE_BYTES * page.rows.length) / text.length)))
              yield text
            }
            stats.rows += page.rows.length
            after = page.next
          } while (after)
          if (format === 'json') yield '\n]\n'
          stats.complete = true
        } finally {
          await ctx.audit(exportActivity(who, format, filters, stats)).catch((err: unknown) => request.log.error({ err }, 'export: could not record the audit activity'))
        }
      }
      const stamp = new Date().toISOString().replaceAll(':', '').replace(/\.\d+Z$/, 'Z')
      return reply
        .type(FORMATS[format].type)
        .header('content-disposition', `attachment; filename="activities-${stamp}.${FORMATS[format].extension}"`)
        .send(Readable.from(body(), { objectMode: false }))
    },
  )
}

/** Who exported what: the filter as given (times in ISO), the format, the rows sent and whether the client got them all. */
function exportActivity(who: string, format: string, filters: Filters, stats: { rows: number; complete: boolean }): Activity {
  const filter = Object.fromEntries(
    Object.entries(filters).map(([k, v]) => [k, (k === 'from' || k === 'to') && typeof v === 'number' ? new Date(v).toISOString() : v]),
  )
  const parsed = parseActivity({
    source: 'user',
    action: 'activities.export',
    category: 'data_export',
    severity: 'notice',
    status: stats.complete ? 'success' : 'canceled',
    actor_id: who,
    entity_type: 'activities',
    details: { format, filter, rows: stats.rows, complete: stats.complete },
  })
  if (!parsed.ok) throw new Error(`export audit activity is invalid: ${JSON.stringify(parsed.issues)}`)
  return parsed.activity
}
