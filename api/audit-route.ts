/** GET /api/v1/audit: the PostgreSQL audit trail, newest first, with the /activities filters and a keyset cursor. */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { ACTIVITY_ROW, postgresColumn } from '../schemas/activity-row.ts'
import { ActlineError } from '../schemas/errors.ts'
import { ActivityRow, decodeCursor, encodeCursor, PageQuery, pageBody, takePage } from './activity-pages.ts'
import type { ApiContext } from './context.ts'
import { route } from './route.ts'
import { postgresWhere } from './sql-filters.ts'
import { verifyAuditLog } from '../schemas/audit-chain-store.ts'

const HEX_HASH = z.string().regex(/^[0-9a-f]{64}$/).nullable()

/** An audit_log row: the activity's fields, its time as occurred_at, microsecond precision, and its link in its tenant's hash chain. */
const AuditLogRow = ActivityRow.omit({ timestamp: true })
  .extend({
    occurred_at: z.string().meta({ description: 'ISO 8601, UTC' }),
    chain: z.string().nullable().meta({ description: "the hash chain the row is in: its tenant, '' for rows without one (docs/audit-integrity.md)" }),
    chain_seq: z.string().regex(/^\d+$/).nullable().meta({ description: 'its sequence number in the chain, from 1, as decimal text (a 64-bit integer)' }),
    prev_hash: HEX_HASH.meta({ description: "the hash of the chain's row before it, hex (SHA-256)" }),
    row_hash: HEX_HASH.meta({ description: 'SHA-256(prev_hash || the canonical encoding of the row), hex' }),
  })
  .strict()

/** audit_log's columns in row order (an address as text), then the row's link. */
const SELECT_LIST = [
  ...ACTIVITY_ROW.map((f) => (f.kind === 'ip' ? `host(${postgresColumn(f)}) AS ${postgresColumn(f)}` : postgresColumn(f))),
  `chain`,
  `chain_seq::text AS chain_seq`,
  `encode(prev_hash, 'hex') AS prev_hash`,
  `encode(row_hash, 'hex') AS row_hash`,
].join(', ')

const VerifyQuery = z
  .object({
    tenant: z.string().max(256).meta({ description: "the tenant whose chain to verify; empty for the chain of rows without a tenant" }),
    since: z.iso.datetime({ offset: true }).optional().meta({ description: 'verify from the first row at or after this time (its link taken on trust)' }),
  })
  .strict()

const BreakBody = z.strictObject({
  kind: z.enum(['edited', 'deleted', 'inserted', 'reordered', 'truncated', 'replaced']),
  chain: z.string(),
  seq: z.string(),
  id: z.string().optional(),
  message: z.string(),
})

const VerifyBody = z.strictObject({
  ok: z.boolean().meta({ description: 'the chain is whole and no row of the tenant lacks a chain' }),
  chain: z.string(),
  rows: z.number().int(),
  retained: z.string().optional().meta({ description: 'rows retention dropped, as its recorded cuts say' }),
  head: z.strictObject({ seq: z.string(), hash: z.string() }).optional(),
  broken: BreakBody.optional().meta({ description: 'the first broken link, when there is one' }),
  unchained: z.number().int().meta({ description: "the tenant's rows that carry no chain (inserted around the writer)" }),
  seconds: z.number(),
})

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
  const postgres = () => {
    if (!ctx.postgres) throw new ActlineError('ACT_ERR_STORAGE_UNAVAILABLE', 'the audit trail is in PostgreSQL, and the postgres exporter is disabled', {})
    return ctx.postgres
  }

  route(
    app,
    {
      url: '/audit/verify',
      scope: 'admin',
      query: VerifyQuery,
      response: VerifyBody,
      summary: "Verify a tenant's hash chain in the audit trail",
      description: 'Streams the chain from its first row (or `since`) and names the first broken link and its kind, as `actline audit verify` does (docs/audit-integrity.md). Reads every row of the chain: minutes for tens of millions.',
    },
    async ({ tenant, since }) => {
      const report = await verifyAuditLog(postgres(), { tenant, ...(since && { since: new Date(since) }), ...(ctx.acceptRetention && { acceptRetention: ctx.acceptRetention }) })
      const chain = report.chains[0] ?? { chain: tenant, rows: 0 }
      return { ok: report.ok, ...chain, unchained: report.unchained, seconds: report.seconds }
    },
  )

  route(
    app,
    { url: '/audit', scope: 'read', query: PageQuery, response: pageBody(AuditLogRow), summary: 'The append-only audit trail in PostgreSQL, newest first' },
    async ({ limit, cursor, ...filters }) => {
      const { where, params } = postgresWhere(filters)
      let keyset = ''
      if (cursor !== undefined) {
        const after = decodeCursor(cursor, PG_TIME)
        keyset = ` AND (occurred_at, id) < ($${params.push(after.timestamp)}::timestamptz, $${params.push(after.id)}::uuid)`
      }
      const rows = await postgres().rows<AuditRow>(
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
