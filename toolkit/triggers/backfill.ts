/**
 * `actline triggers backfill`: the legacy audit rows, copied into actline
 * through a running collector's intake, so they take every activity's path
 * (the log, dedup, routing to ClickHouse and the audit trail) as the
 * `db.insert|update|delete` activities the SDK would have sent.
 *
 * Each row is stored once however often the backfill runs or crashes:
 * - its activity id is derived from the row (database, table, key), so a
 *   page re-sent after a crash is one the collector has just seen (its
 *   recent-ids window, kept across its own restarts) and the audit trail's
 *   key refuses twice;
 * - a checkpoint file, replaced atomically after each acknowledged page,
 *   holds the key up to which every row is stored, so a second run resumes
 *   there and sends nothing old. ClickHouse does not deduplicate by id
 *   beyond the collector's window: the checkpoint is what guards it.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, appendFileSync } from 'node:fs'
import type pg from 'pg'
import type { ActivityInputType } from '../../schemas/activity.ts'
import { backoffDelay, retryAfterMs } from '../../lib/backoff.ts'
import { sleep } from '../../lib/sleep.ts'
import { stableUuidv7 } from '../../schemas/uuidv7.ts'
import { bareTable, legacyColumns, normalizeOperation, qualified, type LegacyColumns } from './legacy.ts'
import { parseToolkitFile, quoteIdent } from './sql.ts'

export interface Checkpoint {
  format: 'actline-backfill-checkpoint'
  version: 1
  /** What it is the checkpoint of: a resumed run must be the same backfill. */
  database: string
  table: string
  key_column: string
  since: string | null
  /** Every row with a key up to this one (in the key column's order) is stored; null before the first page. */
  cursor: string | null
  sent: number
  rejected: number
  updated_at: string
}

export interface BackfillSource {
  database: string
  /** schema.table, as the catalog names it. */
  table: string
  key: string
  columns: LegacyColumns
}

/** A page of legacy rows as activities, and the key of its last row. */
export interface Page {
  activities: ActivityInputType[]
  /** Legacy keys of `activities`, in order (for naming refused rows). */
  keys: string[]
  /** Rows refused before sending (no time, an operation that is no db write). */
  refused: Refusal[]
  lastKey: string
}

export interface Refusal {
  /** The row's key; null for a row whose key column is NULL, which `row` (its ctid when read) names instead. */
  key: string | null
  reason: string
  row?: string
}

/** The table, its key (its primary key, or a unique column given), and its columns. */
export async function backfillSource(client: pg.ClientBase, table: string, given: Partial<LegacyColumns> & { key?: string }): Promise<BackfillSource> {
  const columns = await legacyColumns(client, table, given, ['id', 'old', 'new', 'actor', 'tenant'])
  const { rows } = await client.query(
    `SELECT current_database() AS db, n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`,
    [qualified(table)],
  )
  if (rows.length === 0) throw new Error(`no table ${table}: pass --legacy-table schema.table`)
  const { db, schema, name } = rows[0]
  // Single-column unique indexes (the primary key first): keyset pages need a key no two rows share.
  const unique = (
    await client.query(
      `SELECT a.attname AS col, i.indisprimary AS pk FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
       WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL ORDER BY i.indisprimary DESC`,
      [qualified(table)],
    )
  ).rows as { col: string; pk: boolean }[]
  let key = unique[0]?.col
  if (given.key !== undefined) {
    if (!unique.some((u) => u.col === given.key)) throw new Error(`--key-column ${given.key} is not unique in ${schema}.${name}: the key must be its primary key or a column with a unique index`)
    key = given.key
  }
  if (!key) throw new Error(`${schema}.${name} has no single-column primary key: pass --key-column, a column with a unique index, to page it by`)
  return { database: db, table: `${schema}.${name}`, key, columns }
}

/** The id of a legacy row's activity: the same row (database, table, key) gives the same id on every run. */
export function backfillId(source: Pick<BackfillSource, 'database' | 'table'>, key: string, ms: number): string {
  return stableUuidv7(ms, 'actline-backfill', source.database, source.table, key)
}

const WRITES = new Set(['insert', 'update', 'delete', 'truncate'])

/** A legacy row as the activity the SDK sends for a write; a reason instead when it cannot be one. */
export function toActivity(source: BackfillSource, row: Record<string, unknown>): ActivityInputType | Refusal {
  const key = String(row.k)
  const op = row.op == null ? '' : normalizeOperation(String(row.op))
  if (!WRITES.has(op)) return { key, reason: row.op == null ? 'the operation is null' : `operation '${String(row.op).slice(0, 40)}' is not an insert, update, delete or truncate` }
  if (row.ms == null) return { key, reason: 'the time is null' }
  if (row.tbl == null) return { key, reason: 'the table name is null' }
  const ms = Math.floor(Number(row.ms))
  const details: Record<string, unknown> = {}
  if (row.old != null) details.old = row.old
  if (row.new != null) details.new = row.new
  return {
    id: backfillId(source, key, ms),
    timestamp: ms,
    source: 'database',
    action: `db.${op}`,
    category: 'data_modification',
    entity_type: bareTable(String(row.tbl)),
    ...(row.id != null && { entity_id: String(row.id) }),
    ...(row.actor != null && { actor_id: String(row.actor) }),
    ...(row.tenant != null && { tenant_id: String(row.tenant) }),
    ...(Object.keys(details).length > 0 && { details }),
    attributes: { 'legacy.table': source.table, 'legacy.key': key },
  }
}

/** Pages of rows after `cursor` within the window, in key order; the next page is read while the caller sends this one. */
export async function* readPages(client: pg.ClientBase, source: BackfillSource, o: { cursor: string | null; since?: Date; until: Date; pageSize: number }): AsyncGenerator<Page> {
  const c = source.columns
  // An optional column as itself (`cast` '::text' for ids and names), or NULL when the table has none.
  const col = (name: string | undefined, as: string, cast = '') => (name ? `${quoteIdent(name)}${cast} AS ${as}` : `NULL AS ${as}`)
  const select = `SELECT ${quoteIdent(source.key)}::text AS k, ${quoteIdent(c.table)}::text AS tbl, ${quoteIdent(c.operation)}::text AS op,
      floor(extract(epoch FROM ${quoteIdent(c.time)}) * 1000)::float8 AS ms, ${col(c.id, 'id', '::text')},
      ${col(c.old, 'old')}, ${col(c.new, 'new')}, ${col(c.actor, 'actor', '::text')}, ${col(c.tenant, 'tenant', '::text')}
    FROM ${qualified(source.table)} AS t`
  const page = (cursor: string | null) =>
    client.query(`${select} WHERE ${rowsLeft(source, cursor)} ORDER BY t.${quoteIdent(source.key)} LIMIT ${o.pageSize}`, [cursor, o.until, o.since ?? null])
  let next = page(o.cursor)
  for (;;) {
    const { rows } = await next
    if (rows.length === 0) return
    const lastKey = String(rows.at(-1)!.k)
    if (rows.length === o.pageSize) next = page(lastKey)
    const out: Page = { activities: [], keys: [], refused: [], lastKey }
    for (const row of rows) {
      const a = toActivity(source, row)
      if ('reason' in a) out.refused.push(a)
      else {
        out.activities.push(a)
        out.keys.push(String(row.k))
      }
    }
    yield out
    if (rows.length < o.pageSize) return
  }
}

/**
 * Rows of the window ($2 until, $3 since), the table aliased t: columns
 * qualified, so an output name (`id` for the legacy row's id) never shadows
 * the key in ORDER BY. A row without a time is in every window, so that it is
 * read and refused with its reason rather than skipped unseen.
 */
const inWindow = (source: BackfillSource) => {
  const time = `t.${quoteIdent(source.columns.time)}`
  return `(${time} IS NULL OR (${time} < $2 AND ($3::timestamptz IS NULL OR ${time} >= $3)))`
}

/** The rows after the cursor ($1; all with a key before the first page), within the window: what reading and counting both take. A NULL key is no place to resume from: nullKeyRows refuses those rows. */
const rowsLeft = (source: BackfillSource, cursor: string | null) =>
  // The key compared as its own type: $1 takes the column's type from the comparison.
  `${cursor === null ? `$1::text IS NULL AND t.${quoteIdent(source.key)} IS NOT NULL` : `t.${quoteIdent(source.key)} > $1`} AND ${inWindow(source)}`

/**
 * Rows of the window whose key is NULL (a unique column may hold several):
 * pages go by the key and never reach them, so they are refused by name
 * (their ctid as read), with the reason, rather than left out unseen.
 */
export async function nullKeyRows(client: pg.ClientBase, source: BackfillSource, o: { since?: Date; until: Date }): Promise<Refusal[]> {
  const { rows } = await client.query<{ ctid: string }>(
    `SELECT t.ctid::text AS ctid FROM ${qualified(source.table)} AS t WHERE t.${quoteIdent(source.key)} IS NULL AND $1::text IS NULL AND ${inWindow(source)} ORDER BY t.ctid`,
    [null, o.until, o.since ?? null],
  )
  return rows.map((r) => ({ key: null, row: `ctid ${r.ctid}`, reason: `its key column ${source.key} is NULL: the row cannot be told apart or resumed from; give it a key, or pass --key-column with a column it has` }))
}

/** How many rows are left to send, for the progress bar's ETA. */
export async function remaining(client: pg.ClientBase, source: BackfillSource, o: { cursor: string | null; since?: Date; until: Date }): Promise<number> {
  const { rows } = await client.query(
    `SELECT count(*)::float8 AS n FROM ${qualified(source.table)} AS t WHERE ${rowsLeft(source, o.cursor)}`,
    [o.cursor, o.until, o.since ?? null],
  )
  return rows[0].n
}

export class CollectorError extends Error {}

/** Before anything is read: a collector that is not there is told at once, not after a minute of retries. */
export async function reachCollector(collector: string): Promise<void> {
  try {
    const res = await fetch(`${collector}/healthz`, { signal: AbortSignal.timeout(5_000) })
    await res.body?.cancel()
  } catch (err) {
    const why = (err as Error & { cause?: { code?: string; message?: string } }).cause
    throw new CollectorError(`nothing answers at ${collector} (${why?.code ?? why?.message ?? (err as Error).message}): start the collector (actline start), or pass --collector URL`)
  }
}

/** How long a collector that does not answer is waited for before the backfill gives up (it resumes where it stopped). */
const UNREACHABLE_MS = 60_000
const RETRY = { initial_interval_ms: 200, max_interval_ms: 5_000, multiplier: 2 }

/**
 * Sends one page as NDJSON; resolves with the rows the collector refused
 * (its per-item errors), waiting out 429/503 (Retry-After) and a collector
 * that is restarting. Anything else is a CollectorError saying what to do.
 */
export async function sendPage(collector: string, apiKey: string | undefined, page: Page, signal?: AbortSignal): Promise<Refusal[]> {
  const body = page.activities.map((a) => JSON.stringify(a)).join('\n')
  const headers: Record<string, string> = { 'content-type': 'application/x-ndjson' }
  if (apiKey) headers.authorization = `Bearer ${apiKey}`
  const since = Date.now()
  for (let attempt = 0; ; attempt++) {
    let res: Response
    try {
      res = await fetch(`${collector}/v1/activities`, { method: 'POST', headers, body, signal })
    } catch (err) {
      if (signal?.aborted) throw err
      if (Date.now() - since > UNREACHABLE_MS) throw new CollectorError(`the collector at ${collector} does not answer (${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}): start it, then run the same command again to resume`)
      await sleep(backoffDelay(RETRY, attempt), signal)
      continue
    }
    const text = await res.text()
    if (res.status === 429 || res.status === 503) {
      await sleep(Math.min(30_000, retryAfterMs(res.headers.get('retry-after')) ?? 1000), signal)
      continue
    }
    let reply: { accepted?: number; rejected?: number; errors?: { index: number; message: string; path?: string }[]; error?: string; message?: string; details?: { errors?: { index: number; message: string; path?: string }[] } } = {}
    try {
      reply = JSON.parse(text)
    } catch {}
    if (res.ok || (res.status === 400 && reply.error === 'ACT_ERR_VALIDATION')) {
      const errors = reply.errors ?? reply.details?.errors ?? []
      // One refusal per refused row: the reply lists each of a row's issues, several for one row at times.
      const byRow = new Map<number, string[]>()
      for (const e of errors) byRow.set(e.index, [...(byRow.get(e.index) ?? []), `${e.path ? `${e.path}: ` : ''}${e.message}`])
      const refused: Refusal[] = [...byRow].map(([index, reasons]) => ({ key: page.keys[index] ?? '?', reason: reasons.join('; ') }))
      const count = res.ok ? (reply.rejected ?? 0) : page.activities.length
      // Past the reply's list of errors the collector only counts: the rows are refused all the same.
      for (let i = refused.length; i < count; i++) refused.push({ key: '?', reason: 'refused by the collector (past the errors its reply lists)' })
      return refused
    }
    if (res.status === 401 || res.status === 403) throw new CollectorError(`the collector refused the API key (${res.status}): pass --api-key with a key of ingest scope (or set ACTLINE_API_KEY)`)
    if (res.status === 413) throw new CollectorError(`the collector refused a page of ${page.activities.length} rows as too large (413): pass a smaller --batch`)
    throw new CollectorError(`the collector answered ${res.status}: ${reply.message ?? text.slice(0, 200)}`)
  }
}

export function readCheckpoint(file: string): Checkpoint | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return parseToolkitFile<Checkpoint>(text, file, 'actline-backfill-checkpoint', 'backfill')
}

/** Replaces the checkpoint atomically and durably: after a crash it is the old one or the new one, never half of either. */
export function writeCheckpoint(file: string, checkpoint: Checkpoint): void {
  const tmp = `${file}.tmp`
  const fd = openSync(tmp, 'w')
  try {
    writeSync(fd, `${JSON.stringify(checkpoint, null, 2)}\n`)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, file)
}

/** Refused rows, appended one JSON line each, so none is lost from sight. */
export function recordRefusals(file: string, refusals: readonly Refusal[]): void {
  if (refusals.length) appendFileSync(file, refusals.map((r) => JSON.stringify(r)).join('\n') + '\n')
}
