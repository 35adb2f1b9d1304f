/**
 * The register hook's database path: pg's Client.prototype.query, wrapped
 * once. A statement that is not an INSERT, UPDATE, DELETE, MERGE or WITH (a
 * read, BEGIN, COMMIT, set_config) goes straight through after one test of
 * its first word, past any comments (the span mapping's own test, mayWrite): no span, no attribute, no copy of its text. A write is read
 * (instrumentation/statement-rows.ts) and, when it returns, becomes one
 * activity per row through the same mapping as a pg span
 * (schemas/span-activity.ts), so either path gives the same activities.
 */
import { mayWrite, type DbRows, type SpanRecord } from '../../schemas/span-activity.ts'
import { randomHex } from '../../schemas/uuidv7.ts'
import { activeTraceIds, contextAttributes, copyContext, currentActivityContext, type ActivityContext } from '../activity-context.ts'
import type { RowReader, StatementRows } from '../pg-row-hooks.ts'
import type { Recorder } from './recorder.ts'

const PATCHED = Symbol.for('actline.pg-writes')

type Query = (this: PgClient, ...args: unknown[]) => unknown
interface PgClient {
  database?: string
}
type Callback = (err: unknown, res?: unknown) => void
interface Result {
  rows?: unknown[]
  rowCount?: number | null
}

interface PendingWrite {
  text: string
  values: unknown[] | undefined
  database: string | undefined
  started: number
  t0: number
  durationMs: number
  ids: { traceId: string; spanId: string } | undefined
  context: ActivityContext | undefined
  error: unknown
  result: Result | undefined
}

export interface PgWritesStats {
  /** Statements that passed the first look and were read. */
  read: number
}

export function patchPgWrites(proto: { query: Query }, reader: RowReader, recorder: Recorder, stats: PgWritesStats): void {
  /** One write's activities, built in the recorder's batch. */
  const buildWrite = (w: PendingWrite) => {
    let stmt: StatementRows | undefined
    try {
      stmt = reader.read(w.text, w.values)
    } catch {
      stmt = undefined // a statement the reader cannot follow is mapped without rows
    }
    const attributes: Record<string, string | undefined> = contextAttributes(w.context)
    attributes['db.system'] = 'postgresql'
    attributes['db.namespace'] = w.database
    attributes['db.query.text'] = w.text
    if (stmt) {
      attributes['db.operation.name'] = stmt.operation
      attributes['db.collection.name'] = stmt.table
    }
    const span: SpanRecord = {
      name: 'pg.query',
      kind: 'client',
      traceId: w.ids?.traceId ?? randomHex(16),
      spanId: randomHex(8),
      startTimeMs: w.started,
      durationMs: w.durationMs,
      attributes,
      status: w.error ? 'error' : 'unset',
      resource: recorder.resource,
    }
    if (w.error instanceof Error) span.statusMessage = w.error.message
    const rows: DbRows | undefined = stmt && recorder.rows(stmt, stmt.returning ? w.result?.rows : undefined, w.error ? undefined : w.result?.rowCount)
    recorder.record(span, rows)
  }
  // Marked on the prototype, not the function: another wrapper (transaction tagging) may sit on top of ours by the time pg is required again.
  const marks = proto as unknown as Record<symbol, unknown>
  if (Object.hasOwn(marks, PATCHED)) return
  marks[PATCHED] = true
  const inner = proto.query
  const query = function (this: PgClient) {
    // `arguments`, not a rest parameter: the common case (a read) then allocates nothing here.
    // eslint-disable-next-line prefer-rest-params
    const args = arguments as unknown as unknown[]
    const first = args[0] as string | { text?: unknown; values?: unknown; submit?: unknown; callback?: unknown } | undefined
    const text = typeof first === 'string' ? first : typeof first?.text === 'string' ? first.text : undefined
    if (text === undefined || !mayWrite(text) || typeof (first as { submit?: unknown }).submit === 'function') {
      return inner.apply(this, args)
    }
    return traced.call(this, inner, args, text, first)
  } as Query
  proto.query = query

  function traced(this: PgClient, run: Query, args: unknown[], text: string, first: unknown): unknown {
    stats.read++
    const values = (Array.isArray(args[1]) ? args[1] : (first as { values?: unknown })?.values) as unknown[] | undefined
    // Only what the write's activity needs is taken now (copies: the app may reuse its objects);
    // reading the statement and building the activity wait for the batch (recorder.ts).
    const write: PendingWrite = {
      text,
      values: values?.slice(),
      database: this.database,
      started: Date.now(),
      t0: performance.now(),
      durationMs: 0,
      ids: activeTraceIds(),
      context: copyContext(currentActivityContext()),
      error: undefined,
      result: undefined,
    }
    const done = (err: unknown, res: unknown) => {
      write.durationMs = performance.now() - write.t0
      write.error = err
      // A multi-statement string answers with an array: its rows are not one statement's.
      write.result = Array.isArray(res) ? undefined : (res as Result | undefined)
      recorder.defer(buildWrite, write)
    }
    const callback = typeof args[args.length - 1] === 'function' ? (args[args.length - 1] as Callback) : undefined
    if (callback) {
      const copy = Array.from(args)
      copy[copy.length - 1] = (err: unknown, res?: unknown) => {
        done(err, res as Result)
        callback(err, res)
      }
      return run.apply(this, copy)
    }
    if (typeof (first as { callback?: unknown })?.callback === 'function') {
      const config = first as { callback: Callback }
      const original = config.callback
      const copy = Array.from(args)
      copy[0] = { ...config, callback: (err: unknown, res?: unknown) => { done(err, res as Result); original(err, res) } }
      return run.apply(this, copy)
    }
    const p = run.apply(this, args) as Promise<Result> | undefined
    if (!p || typeof p.then !== 'function') return p
    return p.then(
      (res) => (done(undefined, res), res),
      (err: unknown) => {
        done(err, undefined)
        throw err
      },
    )
  }
}
