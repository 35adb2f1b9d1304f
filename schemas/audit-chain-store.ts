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
import type { StoredChainRow } from './audit-verify.ts'

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
FROM audit_log WHERE chain = $1 AND chain_seq > $2 ORDER BY chain_seq LIMIT ${page}`,
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
