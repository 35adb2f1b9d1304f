/**
 * The server's insert: the batch as COPY text into a session's staging
 * table, then INSERT ... SELECT ... ON CONFLICT from it, in one transaction
 * that also links the rows into their chains (chain.ts). COPY alone cannot
 * skip a re-sent row; through the staging table the server still does the
 * conflict check, and a row cost it 10.0 µs of CPU instead of
 * json_to_recordset's 18.0 (bench:audit-insert, 5,000-row batches). The
 * batch goes in parts of 1,000 rows so the next part is hashed while the
 * server inserts this one (the chain cost 38% of the rows per second in one
 * part, 31% in parts: bench:audit-chain). PGlite keeps json_to_recordset:
 * COPY did not pay there.
 */
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import type { Activity } from '../../schemas/activity.ts'
import { AS_IS, ACTIVITY_ROW, compileRowEncoder, postgresColumn, type FieldEncoding } from '../../schemas/activity-row.ts'
import { isoTime } from '../time-format.ts'
import { yieldToLoop } from '../../schemas/cooperative.ts'
import { CHAIN_COLUMNS } from '../../schemas/audit-chain-store.ts'
import { appendChained, type ChainLink } from './chain.ts'
import { inTransaction } from './pooled.ts'

const NAMES = ACTIVITY_ROW.map(postgresColumn).join(', ')

/** Per session: ON COMMIT DELETE ROWS empties it at each commit, so it never holds a batch past its transaction. */
const STAGE_DDL = 'CREATE TEMP TABLE IF NOT EXISTS actline_audit_stage (LIKE audit_log INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
const LINKED = `${NAMES}, ${CHAIN_COLUMNS.join(', ')}`
const COPY_SQL = `COPY actline_audit_stage (${LINKED}) FROM STDIN`
const STAGE_INSERT_SQL = `INSERT INTO audit_log (${LINKED}) SELECT ${LINKED} FROM actline_audit_stage ON CONFLICT (id, occurred_at) DO NOTHING`
// Between the parts of one batch; ON COMMIT DELETE ROWS empties it at the end.
const STAGE_CLEAR_SQL = 'DELETE FROM actline_audit_stage'

const SPECIAL = /[\\\t\n\r]/
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' }

/** A value in COPY's text format: a backslash, tab and line breaks escaped. */
export function copyText(v: string): string {
  return SPECIAL.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!) : v
}

// The same values json_to_recordset stores: absent is NULL, a json field is
// its JSON text (a string details becomes a JSON string).
const ENCODING: FieldEncoding = {
  ...AS_IS,
  time: (v) => `iso(${v})`,
  text: (v) => `text(${v})`,
  'optional-text': (v) => `(${v} === undefined ? '\\\\N' : text(${v}))`,
  'optional-number': (v) => `(${v} === undefined ? '\\\\N' : String(${v}))`,
  json: (v) => `(${v} === undefined ? '\\\\N' : text(JSON.stringify(${v})))`,
  ip: (v) => `(${v} ?? '\\\\N')`,
  map: (v) => `text(JSON.stringify(${v}))`,
}

const fields: (a: Activity) => string[] = compileRowEncoder('array', ENCODING, { iso: isoTime, text: copyText })

/** An activity's fields as COPY text, tab-separated, without its link or the newline. */
export function copyFields(a: Activity): string {
  return fields(a).join('\t')
}

/** One activity and its link as a line of COPY text, newline included; bytea as hex (`\\x`, its backslash escaped). */
export function toCopyLine(a: Activity, l: ChainLink): string {
  return `${copyFields(a)}\t${copyText(l.chain)}\t${l.seq}\t\\\\x${l.prev.toString('hex')}\t\\\\x${l.hash.toString('hex')}\n`
}

/** Rows per COPY and INSERT: the next part is hashed while the server stores this one. */
const PART_ROWS = 1000

/**
 * Rows `from`..`to` as COPY text, hashed as they are written, with a turn
 * of the event loop every 250: the part before is in flight meanwhile, and
 * its next statement is sent from those turns.
 */
async function partText(rows: readonly Activity[], link: (i: number) => ChainLink, from: number, to: number): Promise<string> {
  let text = ''
  for (let j = from; j < to; j++) {
    if (j > from && (j - from) % 250 === 0) await yieldToLoop()
    text += toCopyLine(rows[j]!, link(j))
  }
  return text
}

/** Sessions whose staging table exists (made in a committed transaction). */
const staged = new WeakSet<pg.ClientBase>()

/** The batch into audit_log on `client`, in one transaction; rejects as the server refused it (rolled back). */
export async function copyInsert(client: pg.ClientBase, batch: readonly Activity[]): Promise<void> {
  const fresh = !staged.has(client)
  await inTransaction(client, async () => {
    if (fresh) await client.query(STAGE_DDL)
    await appendChained(client, batch, async (rows, link) => {
      // Each part: its COPY sent whole (the socket drains while nothing else runs), then its
      // INSERT started, and the next part hashed while the server does that INSERT.
      const insertPart = async () => {
        const stored = (await client.query(STAGE_INSERT_SQL)).rowCount ?? 0
        await client.query(STAGE_CLEAR_SQL)
        return stored
      }
      let stored = 0
      let text = await partText(rows, link, 0, Math.min(rows.length, PART_ROWS))
      for (let from = 0; from < rows.length; from += PART_ROWS) {
        await pipeline(Readable.from([text]), client.query(copyFrom(COPY_SQL)))
        const running = insertPart()
        // Awaited below: until then a refusal must not count as unhandled.
        running.catch(() => {})
        const next = from + PART_ROWS
        if (next < rows.length) text = await partText(rows, link, next, Math.min(rows.length, next + PART_ROWS))
        stored += await running
      }
      return stored
    })
  })
  if (fresh) staged.add(client)
}

/**
 * Whether the server takes COPY FROM STDIN. PGlite behind a socket (a test
 * fixture, `pglite-socket`) speaks the protocol but answers COPY with a
 * protocol violation that also wedges its one connection, so it is told by
 * its version string, never probed; it keeps json_to_recordset.
 */
export async function copySupported(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query<{ version: string }>('SELECT version() AS version')
  return !/PGlite|emscripten/i.test(rows[0]?.version ?? '')
}
