/**
 * The register hook's automatic tagTransaction: every transaction a pg
 * client opens, and every write it makes outside one, carries who is writing
 * to change-data capture (transaction-context.ts, docs/cdc.md "Who did it").
 * Off unless ACTLINE_TAG_TRANSACTIONS=true: it costs a statement per
 * transaction, worth paying only where the database is captured.
 *
 * - `BEGIN` / `START TRANSACTION`: the message is sent with it, in the same
 *   round trip, so it is first inside the transaction.
 * - A write outside a transaction (pool.query('INSERT ...')) runs as
 *   BEGIN, message, the write, COMMIT, and the app hears of it once COMMIT
 *   has: it is just as committed as before when its result arrives, and a
 *   failing COMMIT (a deferred constraint) is its error.
 *
 * Nothing is sent without an activity context or an active trace. Statements
 * sent as one multi-statement string ("BEGIN; INSERT ...; COMMIT") are not
 * tagged: call tagTransaction() there.
 */
import { diag } from '@opentelemetry/api'
import { TRANSACTION_CONTEXT_PREFIX, transactionContext } from './transaction-context.ts'

const PATCHED = Symbol.for('actline.transaction-tagging')
const OPENS = /^\s*(?:begin|start\s+transaction)\b[^;]*;?\s*$/i
const CLOSES = /^\s*(?:commit|end|rollback|abort)(?:\s+(?:work|transaction))?(?:\s+and\s+no\s+chain)?\s*;?\s*$/i
const WRITES = /^\s*(?:insert|update|delete|merge)\b|^\s*with\b[\s\S]*\b(?:insert|update|delete)\b/i

/** The message as SQL text: an E'' literal, read the same whatever standard_conforming_strings says. */
function messageSql(context: Record<string, string>): string {
  const literal = JSON.stringify(context).replaceAll('\\', '\\\\').replaceAll("'", "\\'")
  return `SELECT pg_logical_emit_message(true, '${TRANSACTION_CONTEXT_PREFIX}', E'${literal}')`
}

type Query = (this: PgClient, ...args: unknown[]) => unknown
interface PgClient {
  getTransactionStatus?(): string | null
}

type Callback = (err: unknown, res?: unknown) => void

/** What a client.query call sends, and the callback it wants its result through (taken off the arguments). */
function shapeOf(args: unknown[]): { text: string | undefined; callback?: Callback; rest: unknown[]; submittable: boolean } {
  const first = args[0] as { text?: unknown; callback?: unknown; submit?: unknown } | string | undefined
  const text = typeof first === 'string' ? first : typeof first?.text === 'string' ? first.text : undefined
  const submittable = typeof first === 'object' && typeof first?.submit === 'function'
  if (typeof args[args.length - 1] === 'function') return { text, callback: args[args.length - 1] as Callback, rest: args.slice(0, -1), submittable }
  if (typeof first === 'object' && typeof first?.callback === 'function') {
    const { callback, ...config } = first
    return { text, callback: callback as Callback, rest: [config, ...args.slice(1)], submittable }
  }
  return { text, rest: args, submittable }
}

/**
 * Wraps `proto.query` (pg's Client.prototype) once. Each step waits for the
 * one before (pg 9 no longer queues a client's queries, and 8 warns when
 * asked to): an app runs one query at a time on a client, so nothing of its
 * own comes between. Should the server refuse the message (a DBA revoked
 * pg_logical_emit_message), the transaction is begun again untagged and
 * tagging stops for the process, with one warning: the app never pays for it.
 */
export function patchQuery(proto: { query: Query }): void {
  // Marked on the prototype: the register hook's own wrapper may be put on top of ours when pg is required again.
  const marks = proto as unknown as Record<symbol, unknown>
  if (Object.hasOwn(marks, PATCHED) || (proto.query as unknown as Record<symbol, unknown>)[PATCHED]) return
  marks[PATCHED] = true
  const inner = proto.query
  let refused = false
  // Which clients are inside a transaction they opened with BEGIN, as far as the statements sent so far tell.
  const open = new WeakMap<object, boolean>()
  const query: Query = function (this: PgClient, ...args) {
    const { text, callback, rest, submittable } = shapeOf(args)
    if (refused || text === undefined || submittable) return inner.apply(this, args)
    if (CLOSES.test(text)) {
      open.set(this, false)
      return inner.apply(this, args)
    }
    const opens = OPENS.test(text)
    if (opens) open.set(this, true)
    const status = this.getTransactionStatus?.()
    const context = opens || (WRITES.test(text) && !open.get(this) && status !== 'T' && status !== 'E') ? transactionContext() : undefined
    if (!context) return inner.apply(this, args)
    const send = (...a: unknown[]) => inner.apply(this, a) as Promise<unknown>
    /**
     * The app's BEGIN and the message in one round trip (a simple-protocol
     * string of two statements), answering with BEGIN's own result. Should it
     * fail, BEGIN alone says whose fault it was: failing again, the app's
     * (its error is the app's); succeeding, the message's, and tagging stops.
     */
    const begin = async (beginText: string): Promise<unknown> => {
      try {
        const results = await send(`${beginText.replace(/;\s*$/, '')}; ${messageSql(context)}`)
        return Array.isArray(results) ? results[0] : results
      } catch (err) {
        await send('ROLLBACK').catch(() => {})
        const res = await send(beginText)
        refused = true
        diag.warn(`actline: the database refused pg_logical_emit_message, so transactions are no longer tagged for change-data capture: ${(err as Error).message}`)
        return res
      }
    }
    const work = opens
      ? begin(text)
      : (async () => {
          await begin('BEGIN')
          let res: unknown
          try {
            res = await send(...rest)
          } catch (err) {
            await send('ROLLBACK').catch(() => {})
            throw err
          }
          // A failing COMMIT (a deferred constraint) is the write's error, as it would be in autocommit.
          await send('COMMIT')
          return res
        })()
    if (!callback) return work
    work.then((res) => callback(null, res), (err: unknown) => callback(err))
    return undefined
  }
  ;(query as unknown as Record<symbol, unknown>)[PATCHED] = true
  proto.query = query
}
