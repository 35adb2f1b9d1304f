/**
 * The register hook's automatic tagTransaction: every transaction a pg
 * client opens, and every write it makes outside one, carries who is writing
 * to change-data capture (transaction-context.ts, docs/cdc.md "Who did it").
 * Off unless ACTLINE_TAG_TRANSACTIONS=true: it costs a statement per
 * transaction, worth paying only where the database is captured.
 *
 * - `BEGIN` / `START TRANSACTION`: the message is queued right behind it on
 *   the same client, so it runs first inside the transaction, before any
 *   statement the app sends next (pg runs a client's queries in order).
 * - A write outside a transaction (pool.query('INSERT ...')) runs as
 *   BEGIN, message, the write, COMMIT, and the app hears of it once COMMIT
 *   has: it is just as committed as before when its result arrives, and a
 *   failing COMMIT (a deferred constraint) is its error.
 *
 * Nothing is sent without an activity context or an active trace. Statements
 * sent as one multi-statement string ("BEGIN; INSERT ...; COMMIT") are not
 * tagged: call tagTransaction() there.
 */
import { InstrumentationBase, InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation'
import { TRANSACTION_CONTEXT_PREFIX, transactionContext } from './transaction-context.ts'

const PATCHED = Symbol.for('actline.transaction-tagging')
const OPENS = /^\s*(?:begin|start\s+transaction)\b[^;]*;?\s*$/i
const CLOSES = /^\s*(?:commit|end|rollback|abort)(?:\s+(?:work|transaction))?(?:\s+and\s+no\s+chain)?\s*;?\s*$/i
const WRITES = /^\s*(?:insert|update|delete|merge)\b|^\s*with\b[\s\S]*\b(?:insert|update|delete)\b/i
const MESSAGE = 'SELECT pg_logical_emit_message(true, $1, $2)'

type Query = (this: PgClient, ...args: unknown[]) => unknown
interface PgClient {
  getTransactionStatus?(): string | null
}

/** What a client.query call sends: its text, and whether its result is wanted through a callback or a stream. */
function shapeOf(args: unknown[]): { text: string | undefined; callback: boolean; submittable: boolean } {
  const first = args[0] as { text?: unknown; callback?: unknown; submit?: unknown } | string | undefined
  const text = typeof first === 'string' ? first : typeof first?.text === 'string' ? first.text : undefined
  const callback = typeof args[args.length - 1] === 'function' || (typeof first === 'object' && typeof first?.callback === 'function')
  return { text, callback, submittable: typeof first === 'object' && typeof first?.submit === 'function' }
}

/** Wraps `proto.query` (pg's Client.prototype) once. */
export function patchQuery(proto: { query: Query }): void {
  if ((proto.query as unknown as Record<symbol, unknown>)[PATCHED]) return
  const inner = proto.query
  // Which clients are inside a transaction they opened with BEGIN, as far as the statements sent so far tell.
  const open = new WeakMap<object, boolean>()
  const query: Query = function (this: PgClient, ...args) {
    const { text, callback, submittable } = shapeOf(args)
    if (text === undefined || submittable) return inner.apply(this, args)
    if (OPENS.test(text)) {
      open.set(this, true)
      const result = inner.apply(this, args)
      const context = transactionContext()
      if (context) void Promise.resolve(inner.call(this, MESSAGE, [TRANSACTION_CONTEXT_PREFIX, JSON.stringify(context)])).catch(() => {})
      return result
    }
    if (CLOSES.test(text)) {
      open.set(this, false)
      return inner.apply(this, args)
    }
    const status = this.getTransactionStatus?.()
    if (!WRITES.test(text) || open.get(this) || status === 'T' || status === 'E') return inner.apply(this, args)
    const context = transactionContext()
    if (!context) return inner.apply(this, args)
    // All four queued now, in order: nothing else the app sends can come between them.
    const quiet = (p: unknown) => void Promise.resolve(p).catch(() => {})
    // A write pg refuses before sending must not leave the BEGIN it was given open.
    const send = (client: PgClient, a: unknown[]) => {
      try {
        return inner.apply(client, a)
      } catch (err) {
        quiet(inner.call(client, 'ROLLBACK'))
        throw err
      }
    }
    quiet(inner.call(this, 'BEGIN'))
    quiet(inner.call(this, MESSAGE, [TRANSACTION_CONTEXT_PREFIX, JSON.stringify(context)]))
    if (callback) {
      let commit: Promise<unknown> | undefined
      const last = args.length - 1
      const first = args[0] as { callback?: (...a: unknown[]) => void }
      const cb = (typeof args[last] === 'function' ? args[last] : first.callback) as (err: unknown, res?: unknown) => void
      const after = (err: unknown, res?: unknown) => void commit!.then(() => cb(err, res), (e: unknown) => cb(err ?? e, res))
      if (typeof args[last] === 'function') args[last] = after
      else args[0] = { ...first, callback: after }
      send(this, args)
      commit = Promise.resolve(inner.call(this, 'COMMIT'))
      return undefined
    }
    const write = Promise.resolve(send(this, args))
    const commit = Promise.resolve(inner.call(this, 'COMMIT'))
    return write.then(
      async (res) => (await commit, res),
      async (err: unknown) => {
        await commit.catch(() => {})
        throw err
      },
    )
  }
  ;(query as unknown as Record<symbol, unknown>)[PATCHED] = true
  proto.query = query
}

/** The Instrumentation the register hook adds after the pg one: it patches pg's Client on load, ESM or CommonJS. */
export class TransactionTaggingInstrumentation extends InstrumentationBase {
  constructor() {
    super('actline-transaction-tagging', '1.0.0', {})
  }

  protected init() {
    return [
      new InstrumentationNodeModuleDefinition('pg', ['>=8 <9'], (module: unknown) => {
        const m = module as { Client?: { prototype: { query: Query } }; default?: { Client?: { prototype: { query: Query } } } }
        const client = m.Client ?? m.default?.Client
        if (client) patchQuery(client.prototype)
        return module
      }),
    ]
  }
}
