/** GET /api/v1/audit: the PostgreSQL audit trail, newest first, with the /activities filters and a keyset cursor. */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { ACTIVITY_ROW, postgresColumn } from '../schemas/activity-row.ts'
import { ActlineError } from '../schemas/errors.ts'
import { ActivityRow, decodeCursor, encodeCursor, PageQuery, pageBody, takePage } from './activity-pages.ts'
import type { ApiContext } from './context.ts'
import { route } from './route.ts'
import { postgresWhere } from './sql-filters.ts'

/** An audit_log row: the activity's fields, its time as occurred_at, microsecond precision. */
const AuditLogRow = ActivityRow.omit({ timestamp: true })
  .extend({ occurred_at: z.string().meta({ description: 'ISO 8601, UTC' }) })
  .strict()

/** audit_log's columns in row order; an address as text. */
const SELECT_LIST = ACTIVITY_ROW.map((f) => (f.kind === 'ip' ? `host(${postgresColumn(f)}) AS ${postgresColumn(f)}` : postgresColumn(f))).join(', ')

/** The cursor keeps PostgreSQL's full microsecond precision, so ties break exactly. */
const PG_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/

interface AuditRow {
  id: string
  occurred_at: Date
  received_at: Date
  cursor_ts: string
  [column: string]: unknown
}

export const auditRoute: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  route(
    app,
    { url: '/audit', scope: 'read', query: PageQuery, response: pageBody(AuditLogRow), summary: 'The append-only audit trail in PostgreSQL, newest first' },
    async ({ limit, cursor, ...filters }) => {
      if (!ctx.postgres) {
        throw new ActlineError('ACT_ERR_STORAGE_UNAVAILABLE', 'the audit trail is in PostgreSQL, and the postgres exporter is disabled', {})
      }
      const { where, params } = postgresWhere(filters)
      let keyset = ''
      if (cursor !== undefined) {
        const after = decodeCursor(cursor, PG_TIME)
        keyset = ` AND (occurred_at, id) < ($${params.push(after.timestamp)}::timestamptz, $${params.push(after.id)}::uuid)`
      }
      const rows = await ctx.postgres.rows<AuditRow>(
        `SELECT ${SELECT_LIST},
   to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_ts
FROM audit_log WHERE ${where}${keyset}
ORDER BY occurred_at DESC, id DESC LIMIT $${params.push(limit + 1)}`,
        params,
      )
      const page = takePage(rows, limit, (r) => ({ timestamp: r.cursor_ts, id: r.id }))
      return {
        data: page.rows.map(({ cursor_ts: _c, occurred_at, received_at, ...row }) => ({
          ...row,
          occurred_at: occurred_at.toISOString(),
          received_at: received_at.toISOString(),
        })),
        next_cursor: page.next ? encodeCursor(page.next) : null,
      }
    },
  )
}
