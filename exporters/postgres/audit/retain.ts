/**
 * `actline audit retain --before YYYY-MM`: retention that leaves a trace.
 * The whole monthly partitions before that month are dropped (never a
 * DELETE: the guard refuses those), and each chain they cut gets an event
 * appended, `actline.audit.retention`, whose details name the runs of
 * sequence numbers that went, with the hash before each run and the hash of
 * its last row. Verify steps over exactly those runs; any other gap is a
 * deletion. The event is chained like any row, so it cannot be edited
 * unseen, and signed with audit.signing_key when one is set.
 *
 * A chain is not one run per month: an event that arrives late lands in
 * its own (older) month, so a month's rows can sit anywhere in a chain.
 */
import type pg from 'pg'
import type { KeyObject } from 'node:crypto'
import { parseActivity, type Activity } from '../../../schemas/activity.ts'
import { HEADS_TABLE, RETENTION_ACTION, selfValidSql, verifyAuditLog, type ChainDb, type RetentionDetails } from '../../../schemas/audit-chain-store.ts'
import { appendChained } from '../chain.ts'
import { linkedJsonInsert } from '../json-insert.ts'
import { inTransaction } from '../pooled.ts'
import { signValue } from '../../../schemas/audit-anchor.ts'

export class RetainError extends Error {
  override name = 'RetainError'
}

/** Cuts per retention event: keeps each event well under an activity's 256 KiB. */
const CUTS_PER_EVENT = 1000

export interface RetainResult {
  before: string
  partitions: string[]
  rows: number
  chains: { chain: string; rows: number; runs: number }[]
}

const PARTITION = /^audit_log_y(\d{4})m(\d{2})$/

/** The partitions wholly before `before` (YYYY-MM), oldest first. */
export async function partitionsBefore(db: ChainDb, before: string): Promise<string[]> {
  const cutoff = monthOf(before)
  const rows = await db.rows<{ name: string }>(`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass`)
  return rows
    .map((r) => r.name)
    .filter((name) => {
      const m = PARTITION.exec(name)
      return m !== null && Date.UTC(Number(m[1]), Number(m[2]) - 1, 1) < cutoff
    })
    .sort()
}

function monthOf(before: string): number {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(before)
  if (!m) throw new RetainError(`--before must be a month as YYYY-MM, such as 2025-01, got '${before}'`)
  const cutoff = Date.UTC(Number(m[1]), Number(m[2]) - 1, 1)
  const now = new Date()
  if (cutoff > Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)) throw new RetainError(`--before ${before} would drop the current month; the latest is --before ${now.toISOString().slice(0, 7)}`)
  return cutoff
}

/**
 * Drop the partitions before `before`, recording the cut in every chain.
 * Refuses when a chain is broken: retention must not launder tampering.
 */
export async function retain(pool: pg.Pool, before: string, options: { key?: KeyObject | undefined; dryRun?: boolean; progress?: (text: string) => void } = {}): Promise<RetainResult> {
  const db: ChainDb = { rows: async (sql, params) => (await pool.query(sql, params as unknown[])).rows }
  const partitions = await partitionsBefore(db, before)
  const result: RetainResult = { before, partitions, rows: 0, chains: [] }
  if (partitions.length === 0) return result
  const source = partitions.map((p) => `SELECT * FROM ${p}`).join(' UNION ALL ')
  const affected = (await db.rows<{ chain: string | null }>(`SELECT DISTINCT chain FROM (${source}) t`)).map((r) => r.chain)
  if (affected.includes(null)) throw new RetainError(`${partitions.join(', ')} hold rows without a chain (inserted around the writer): run actline audit verify and investigate first`)
  for (const chain of affected as string[]) {
    options.progress?.(`verifying chain '${chain}' before the cut`)
    const report = await verifyAuditLog(db, { tenant: chain })
    const broken = report.chains.find((c) => c.broken)?.broken
    if (broken) throw new RetainError(`chain '${chain}' is broken (${broken.kind} at ${broken.seq}: ${broken.message}); retention would hide it: investigate first`)
  }
  if (options.dryRun) {
    result.rows = Number((await db.rows<{ n: string }>(`SELECT count(*)::text AS n FROM (${source}) t`))[0]!.n)
    return result
  }
  const client = await pool.connect()
  try {
    await inTransaction(client, async () => {
      // Heads first, then the partitions, the order every writer takes them in: no deadlock with a running collector.
      await client.query(`SELECT chain FROM ${HEADS_TABLE} ORDER BY chain COLLATE "C" FOR UPDATE`)
      for (const p of partitions) await client.query(`LOCK TABLE ${p} IN ACCESS EXCLUSIVE MODE`)
      const runs = await cutRuns(client, source, options.progress)
      const events: Activity[] = []
      for (const [chain, list] of runs) {
        const rows = list.reduce((n, [from, to]) => n + Number(BigInt(to) - BigInt(from) + 1n), 0)
        result.rows += rows
        result.chains.push({ chain, rows, runs: list.length })
        for (let i = 0; i < list.length; i += CUTS_PER_EVENT) events.push(retentionEvent(chain, { before, partitions, cuts: list.slice(i, i + CUTS_PER_EVENT) }, options.key))
      }
      for (const p of partitions) {
        await client.query(`DROP TABLE ${p}`)
        options.progress?.(`dropped ${p}`)
      }
      await appendChained(client, events, linkedJsonInsert(client))
    })
  } finally {
    client.release()
  }
  return result
}

/** Per chain, the dropped rows as runs of consecutive sequence numbers; each row's own hash checked on the way. */
async function cutRuns(client: pg.ClientBase, source: string, progress?: (text: string) => void): Promise<Map<string, RetentionDetails['cuts']>> {
  const runs = new Map<string, RetentionDetails['cuts']>()
  let after: [string, string] = ['', '0']
  let read = 0
  for (;;) {
    const { rows } = await client.query<{ chain: string; chain_seq: string; prev_hash: Buffer; row_hash: Buffer; ok: boolean }>(
      `SELECT s.chain, s.chain_seq::text AS chain_seq, s.prev_hash, s.row_hash, (${selfValidSql('s')}) IS TRUE AS ok FROM (${source}) s
WHERE (s.chain, s.chain_seq) > ($1, $2::bigint) ORDER BY s.chain, s.chain_seq LIMIT 10000`,
      after,
    )
    for (const r of rows) {
      const seq = BigInt(r.chain_seq)
      if (!r.ok) throw new RetainError(`row ${seq} of chain '${r.chain}' does not match its hash: it was edited; investigate before retention`)
      const list = runs.get(r.chain) ?? []
      runs.set(r.chain, list)
      const last = list[list.length - 1]
      if (last && BigInt(last[1]) + 1n === seq) {
        last[1] = r.chain_seq
        last[3] = r.row_hash.toString('hex')
      } else list.push([r.chain_seq, r.chain_seq, r.prev_hash.toString('hex'), r.row_hash.toString('hex')])
    }
    read += rows.length
    if (rows.length > 0) progress?.(`read ${read} rows to drop`)
    if (rows.length < 10000) return runs
    after = [rows[rows.length - 1]!.chain, rows[rows.length - 1]!.chain_seq]
  }
}

function retentionEvent(chain: string, details: RetentionDetails, key?: KeyObject): Activity {
  const signed = key ? { ...details, signature: signValue({ chain, ...details }, key) } : details
  const r = parseActivity(
    { source: 'system', service: 'actline', action: RETENTION_ACTION, category: 'compliance', severity: 'notice', ...(chain !== '' && { tenant_id: chain }), details: signed },
    Date.now(),
  )
  if (!r.ok) throw new Error(`retention event refused by the activity schema: ${JSON.stringify(r)}`)
  return r.activity
}
