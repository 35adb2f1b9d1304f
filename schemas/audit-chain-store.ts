/**
 * The hash chain as audit_log stores it: the columns, how a stored row is
 * read back into the values its hash covers, and streaming a chain in
 * sequence order. One definition for the three readers: the migration that
 * chains existing rows, `actline audit verify` and `GET /api/v1/audit/verify`.
 *
 * Rows are read back from what the database holds, never from what was
 * sent: times as whole microseconds (exact: extract() is numeric since
 * PostgreSQL 14), the address as host() prints it, jsonb parsed.
 */
import { ACTIVITY_ROW, postgresColumn } from './activity-row.ts'
import type { ChainValues } from './audit-chain.ts'
import { verifyChain, type ChainCut, type ChainHead, type ChainReport, type StoredChainRow } from './audit-verify.ts'

/** What reads the chain: a query returning rows (a pool, a client, the API's reader). */
export interface ChainDb {
  rows<T>(sql: string, params?: readonly unknown[]): Promise<T[]>
}

export const HEADS_TABLE = 'audit_chain_heads'

/** The chain's columns on audit_log, in the order the writer inserts them. */
export const CHAIN_COLUMNS = ['chain', 'chain_seq', 'prev_hash', 'row_hash'] as const

/** A timestamptz as whole microseconds since the epoch, as text (pg would give bigint as text anyway). */
export const micros = (column: string) => `(extract(epoch from ${column}) * 1000000)::bigint::text`

/** The select list that reads a row's chain values, under its activity names. */
export const CHAIN_VALUES_SELECT = ACTIVITY_ROW.map((f) => {
  const column = postgresColumn(f)
  if (f.kind === 'time') return `${micros(column)} AS "${f.name}"`
  if (f.kind === 'ip') return `host(${column}) AS "${f.name}"`
  return column === f.name ? column : `${column} AS "${f.name}"`
}).join(', ')

interface ChainRowRecord {
  chain: string
  chain_seq: string
  prev_hash: Buffer
  row_hash: Buffer
  [field: string]: unknown
}

/** A stored row's values as its hash covers them. */
export function chainValuesOfRow(r: Record<string, unknown>): ChainValues {
  const values: Record<string, unknown> = {}
  for (const f of ACTIVITY_ROW) values[f.name] = f.kind === 'time' ? BigInt(r[f.name] as string) : r[f.name]
  return values as ChainValues
}

/**
 * One chain's rows from `afterSeq` on, in sequence order, a page at a time:
 * keyset on (chain, chain_seq), the index's order, so a chain of any length
 * streams in constant memory.
 */
export async function* chainRows(db: ChainDb, chain: string, afterSeq = 0n, page = 5000): AsyncGenerator<StoredChainRow> {
  let after = afterSeq
  for (;;) {
    const rows = await db.rows<ChainRowRecord>(
      `SELECT chain, chain_seq::text AS chain_seq, prev_hash, row_hash, ${CHAIN_VALUES_SELECT}
FROM audit_log WHERE chain = $1 AND audit_log.chain_seq > $2 ORDER BY audit_log.chain_seq LIMIT ${page}`,
      [chain, after.toString()],
    )
    for (const r of rows) yield { chain: r.chain, seq: BigInt(r.chain_seq), prev_hash: r.prev_hash, hash: r.row_hash, values: chainValuesOfRow(r) }
    if (rows.length < page) return
    after = BigInt(rows[rows.length - 1]!.chain_seq)
  }
}

export interface StoredHead {
  chain: string
  seq: bigint
  hash: Buffer
  updated_at: Date
}

/** Every chain's head as the writer last recorded it, in chain order; `tenant` narrows to one chain. */
export async function chainHeads(db: ChainDb, tenant?: string): Promise<StoredHead[]> {
  const rows = await db.rows<{ chain: string; seq: string; hash: Buffer; updated_at: Date }>(
    `SELECT chain, seq::text AS seq, hash, updated_at FROM ${HEADS_TABLE}${tenant === undefined ? '' : ' WHERE chain = $1'} ORDER BY chain COLLATE "C"`,
    tenant === undefined ? [] : [tenant],
  )
  return rows.map((r) => ({ chain: r.chain, seq: BigInt(r.seq), hash: r.hash, updated_at: r.updated_at }))
}

/** The action of the event `actline audit retain` appends to each chain it cuts; its details hold the cuts. */
export const RETENTION_ACTION = 'actline.audit.retention'

/** Whether a retention event's cuts are to be believed (its signature, where a key is configured). */
export type RetentionFilter = (chain: string, details: RetentionDetails & { signature?: unknown }) => boolean

export interface RetentionDetails {
  before: string
  partitions: string[]
  /** [from, to, prev hash hex, last hash hex] per dropped run of sequence numbers. */
  cuts: [string, string, string, string][]
}

/** The cuts every retention event of the chain recorded (a small partial index finds them), of the events `accept` takes. */
export async function chainCuts(db: ChainDb, chain: string, accept: RetentionFilter = () => true): Promise<ChainCut[]> {
  const rows = await db.rows<{ details: RetentionDetails }>(
    `SELECT details FROM audit_log WHERE chain = $1 AND action = '${RETENTION_ACTION}' AND service = 'actline'`,
    [chain],
  )
  return rows.flatMap((r) =>
    (Array.isArray(r.details?.cuts) && accept(chain, r.details) ? r.details.cuts : []).map(([from, to, prev, last]) => ({ from: BigInt(from), to: BigInt(to), prev: Buffer.from(prev, 'hex'), last: Buffer.from(last, 'hex') })),
  )
}

export interface AuditVerifyOptions {
  /** One tenant's chain only ('' is the chain of rows without a tenant). */
  tenant?: string
  /** Only rows from this time on: each chain is read from its first row at or after it, whose link is taken on trust. */
  since?: Date
  /** Heads an earlier anchor recorded: a chain that now ends before one, or holds another row there, is broken. */
  anchor?: readonly ChainHead[]
  /** Which retention events' cuts to believe; all by default. */
  acceptRetention?: RetentionFilter
  /** Called after each chain. */
  onChain?: (report: ChainReport) => void
}

export interface AuditVerifyReport {
  ok: boolean
  chains: ChainReport[]
  rows: number
  /** Rows that carry no chain at all: inserted around the writer. */
  unchained: number
  seconds: number
}

/**
 * Verify audit_log's chains: each one's links (verifyChain), then its end
 * against the head the writer recorded and, with an anchor, the anchor's.
 */
export async function verifyAuditLog(db: ChainDb, options: AuditVerifyOptions = {}): Promise<AuditVerifyReport> {
  const t0 = performance.now()
  const recorded = new Map((await chainHeads(db, options.tenant)).map((h) => [h.chain, h]))
  const anchored = new Map((options.anchor ?? []).filter((h) => options.tenant === undefined || h.chain === options.tenant).map((h) => [h.chain, h]))
  const chains = new Set([...recorded.keys(), ...anchored.keys(), ...(await storedChains(db, options.tenant))])
  const reports: ChainReport[] = []
  for (const chain of [...chains].sort()) {
    const start = options.since ? await startAt(db, chain, options.since) : undefined
    const anchor = anchored.get(chain)
    let report = await verifyChain(chain, chainRows(db, chain, start?.seq ?? 0n), { anchor: anchor && (!start || anchor.seq > start.seq) ? anchor : undefined, cuts: start ? [] : await chainCuts(db, chain, options.acceptRetention), start })
    if (!report.broken) report = againstHead(report, recorded.get(chain), start?.seq ?? 0n)
    reports.push(report)
    options.onChain?.(report)
  }
  const unchained = await db.rows<{ n: number }>(
    `SELECT count(*)::int AS n FROM audit_log WHERE row_hash IS NULL${options.tenant === undefined ? '' : ` AND ${options.tenant === '' ? 'tenant_id IS NULL' : 'tenant_id = $1'}`}`,
    options.tenant ? [options.tenant] : [],
  )
  const n = unchained[0]!.n
  return { ok: n === 0 && reports.every((r) => !r.broken), chains: reports, rows: reports.reduce((s, r) => s + r.rows, 0), unchained: n, seconds: (performance.now() - t0) / 1000 }
}

/** A whole chain must end where the writer last left it. */
function againstHead(report: ChainReport, head: StoredHead | undefined, startSeq: bigint): ChainReport {
  const last = BigInt(report.head?.seq ?? startSeq)
  const { chain } = report
  if (!head) return { ...report, broken: { kind: 'inserted', chain, seq: '1', message: `chain '${chain}' has no head: its rows were not written by actline` } }
  if (last < head.seq) return { ...report, broken: { kind: 'truncated', chain, seq: (last + 1n).toString(), message: `the chain ends at ${last}, the writer's head is ${head.seq}: rows after ${last} were removed` } }
  if (last > head.seq) return { ...report, broken: { kind: 'inserted', chain, seq: (head.seq + 1n).toString(), message: `rows ${head.seq + 1n}-${last} come after the writer's head (${head.seq}): they were inserted around it` } }
  if (report.head && report.head.hash !== head.hash.toString('hex')) return { ...report, broken: { kind: 'replaced', chain, seq: last.toString(), message: `row ${last} is not the one the writer recorded as the head: the chain was replaced` } }
  return report
}

/** The link before the chain's first row at or after `since`. */
async function startAt(db: ChainDb, chain: string, since: Date): Promise<{ seq: bigint; hash: Buffer } | undefined> {
  const rows = await db.rows<{ seq: string; prev_hash: Buffer }>(
    `SELECT chain_seq::text AS seq, prev_hash FROM audit_log WHERE chain = $1 AND occurred_at >= $2 ORDER BY chain_seq LIMIT 1`,
    [chain, since.toISOString()],
  )
  return rows[0] && { seq: BigInt(rows[0].seq) - 1n, hash: rows[0].prev_hash }
}

/** The chains audit_log holds, by a loose index scan of (chain, chain_seq): one probe per chain, not a scan of the rows. */
async function storedChains(db: ChainDb, tenant?: string): Promise<string[]> {
  if (tenant !== undefined) return (await db.rows<{ chain: string }>('SELECT chain FROM audit_log WHERE chain = $1 LIMIT 1', [tenant])).map((r) => r.chain)
  const rows = await db.rows<{ chain: string }>(`WITH RECURSIVE c AS (
  (SELECT chain FROM audit_log WHERE chain IS NOT NULL ORDER BY chain LIMIT 1)
  UNION ALL
  SELECT (SELECT a.chain FROM audit_log a WHERE a.chain > c.chain ORDER BY a.chain LIMIT 1) FROM c WHERE c.chain IS NOT NULL
) SELECT chain FROM c WHERE chain IS NOT NULL`)
  return rows.map((r) => r.chain)
}
