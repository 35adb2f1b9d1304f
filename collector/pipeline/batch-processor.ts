/**
 * Feeds one exporter from the write-ahead log, in batches by size or age,
 * like the Collector's batch processor over exporterhelper's persistent
 * queue. Each exporter has its own cursor, so a slow store backs up only
 * itself; the log on disk, not memory, holds the backlog.
 *
 * Exactly once in the stores: before a batch goes out, its log range is
 * saved as the cursor's in-flight range. After a crash that range is sent
 * again, then reading resumes. A store that can say which rows it holds
 * (stored(): ClickHouse) is asked first and sent only the rest, as a resend
 * of its own (ExportAttempt.resend): its deduplication token could have been
 * recorded for a part the crash lost. PostgreSQL takes the whole range
 * again and drops what it has by ON CONFLICT.
 *
 * Batches are per exporter, as in the Collector's exporterhelper: each store
 * may want its own size (`pipeline.batch.exporters.<name>`). Defaults
 * (BATCH_DEFAULTS), against the legacy service's 500 rows every 5 s:
 * - send_batch_size 10,000 for every exporter. ClickHouse wants bigger
 *   inserts (10k-100k rows, about one a second per table): each of the four
 *   rollup views writes a part per insert, so a row cost the embedded engine
 *   26 µs of CPU in 5,000-row inserts, 15 in 10,000-row ones and 10 from
 *   50,000 on (BENCHMARKS.md, "Feeding ClickHouse"), and 50,000 took the
 *   collector with a PostgreSQL server 9-22% further end to end. But the
 *   bigger batch is held as activities, as text and as the engine's blocks:
 *   the saturated collector's peak RSS rose ~160-190 MB at 50,000 and came
 *   to 842-883 MiB at 20,000 in the overload test, whose bound is 900. So
 *   the default keeps the memory bound, and a deployment with memory to
 *   spare sets ClickHouse's batch up. PostgreSQL's cost per row does not
 *   fall with the batch at all.
 * - send_batch_max_bytes 32 MiB of log records: bounds a batch's memory when
 *   events are large (10,000 of 8 KB is ~80 MB: they go 4,000 at a time).
 * - timeout_ms 1,000: a quiet collector still makes rows queryable within a
 *   second, at most one small insert per second per store; under load a
 *   second's rows make the batch, so its size follows the rate up to the limit.
 */
import { randomUUID } from 'node:crypto'
import { z } from 'zod'
import type { Activity } from '../../schemas/activity.ts'
import type { Component, Logger } from '../../schemas/component.ts'
import { createHistogram, type Histogram } from '../../lib/histogram.ts'
import { sleep } from '../../lib/sleep.ts'
import type { DeadLetter } from './dead-letter.ts'
import type { ExporterHealth, RetryingExporter } from './retry.ts'
import type { Cursor, WriteAheadLog } from '../wal/write-ahead-log.ts'

/**
 * Batch settings without defaults: a layer (`pipeline.batch`, then
 * `pipeline.batch.exporters.<name>`); a key a layer leaves out falls
 * through to the one below, then to BATCH_DEFAULTS.
 */
export const BatchSettings = z
  .object({
    /** Rows per export (whole log records, so a batch may run over by one request's rows). */
    send_batch_size: z.number().int().min(1).max(1_000_000).optional(),
    /** Log bytes per export, whichever limit comes first (at least one record). */
    send_batch_max_bytes: z.number().int().min(1024).max(1024 * 1024 * 1024).optional(),
    /** A partial batch goes out once its oldest row has waited this long. */
    timeout_ms: z.number().int().min(1).max(600_000).optional(),
  })
  .strict()

export type BatchSettings = z.output<typeof BatchSettings>

export type BatchProcessorConfig = Required<BatchSettings>

export const BATCH_DEFAULTS: BatchProcessorConfig = { send_batch_size: 10_000, send_batch_max_bytes: 32 * 1024 * 1024, timeout_ms: 1_000 }

/** The layers over BATCH_DEFAULTS, later ones winning key by key. */
export function batchConfig(...layers: readonly (BatchSettings | undefined)[]): BatchProcessorConfig {
  const out = { ...BATCH_DEFAULTS }
  for (const layer of layers) for (const [k, v] of Object.entries(layer ?? {})) if (v !== undefined) out[k as keyof BatchProcessorConfig] = v
  return out
}

export interface BatchStats {
  /** Rows the store acknowledged. */
  exported: number
  /** Rows the store rejected for good, written to the dead-letter file. */
  rejected: number
  /** When a row was last dead-lettered, and why. */
  last_dead_letter?: { at: number; reason: string }
  /** Export calls and their summed duration, for the mean export latency. */
  exports: number
  export_seconds: number
  /** Each export call's duration (retries included), seconds. */
  export_duration: Histogram
}

export interface BatchProcessor extends Component {
  /**
   * Register this exporter's cursor with the log, before its store is up:
   * the log keeps every segment a registered cursor still needs, so a store
   * that is down at start cannot have its backlog deleted under it.
   */
  register(): Promise<void>
  /** Activities in the log this exporter has not passed yet. */
  readonly pending: number
  readonly stats: Readonly<BatchStats>
  /** The exporter's retry state: failing since when, and why. */
  readonly health: Readonly<ExporterHealth>
  /** An export call is running (the memory limiter's idea of busy). */
  readonly exporting: boolean
  /** Export what the log holds until caught up or `deadline`; what is left stays in the log for the next start. */
  shutdown(deadline?: number): Promise<void>
}

export interface BatchProcessorOptions {
  config: BatchProcessorConfig
  wal: WriteAheadLog
  exporter: RetryingExporter
  /** Which activities this exporter takes; all when absent. */
  accepts?: (a: Activity) => boolean
  deadLetter: DeadLetter
  logger: Logger
}

export function createBatchProcessor({ config, wal, exporter, accepts, deadLetter, logger }: BatchProcessorOptions): BatchProcessor {
  const name = exporter.name
  const stats: BatchStats = { exported: 0, rejected: 0, exports: 0, export_seconds: 0, export_duration: createHistogram() }
  let cursor: Cursor = { committed: 0 }
  let running: Promise<void> | undefined
  let exporting = false
  let stopping = false
  let deadline = Infinity
  /** When the oldest row not yet exported was first seen waiting. */
  let waitingSince: number | undefined
  const wake = new AbortController()

  /**
   * Export the rows of log range [start, end); false when retrying was cut
   * short by shutdown. `resend`: the range was in flight at the last stop.
   */
  async function exportRange(start: number, end: number, rows?: Activity[], resend?: string): Promise<boolean> {
    const activities = rows ?? (await wal.read(start, Infinity, end)).activities
    let batch = accepts ? activities.filter(accepts) : activities
    if (resend && batch.length > 0) {
      const held = await heldAlready(batch)
      if (!held) return false
      if (held.size > 0) {
        logger.info({ exporter: name, rows: held.size, of: batch.length }, held.size === batch.length ? `${name}: the store already holds the batch in flight` : `${name}: the store already holds part of the batch in flight; sending the rest`)
        batch = batch.filter((a) => !held.has(a.id))
      }
    }
    if (batch.length > 0) {
      await wal.saveCursor(name, { committed: start, inflight: { start, end } })
      const delivered = await deliver(batch, false, resend)
      if (!delivered) return false
    }
    cursor = { committed: end }
    await wal.saveCursor(name, cursor)
    return true
  }

  /**
   * Which rows of the batch the store holds (after a crash, or a failed
   * insert that may have kept some), asked until it answers (it may be down);
   * undefined when shutdown came first. Empty for a store that cannot say.
   */
  async function heldAlready(batch: readonly Activity[]): Promise<Set<string> | undefined> {
    if (!exporter.stored) return new Set()
    for (;;) {
      try {
        return await exporter.stored(batch.map((a) => a.id))
      } catch (err) {
        if (stopping) return undefined
        logger.warn({ exporter: name, err: (err as Error).message }, `${name}: cannot ask the store which rows of the batch it holds; asking again in 1 s`)
        await sleep(1000, wake.signal)
      }
    }
  }

  /** Send a batch; rows the store refuses for good go to the dead-letter file, alone. */
  async function deliver(batch: readonly Activity[], half = false, resend?: string): Promise<boolean> {
    const started = performance.now()
    exporting = true
    // The halves of a batch that gave up get one try each for an unknown
    // error (outages are still retried): a bound of max_elapsed_ms per half
    // would take log2(rows) times as long to isolate the rows.
    const result = await exporter.export(batch, { ...(half && { unknownRetryMs: 0 }), resend }).finally(() => (exporting = false))
    const seconds = (performance.now() - started) / 1000
    stats.exports++
    stats.export_seconds += seconds
    stats.export_duration.observe(seconds)
    if (result.status === 'success') {
      stats.exported += batch.length
      return true
    }
    // Retrying was cut short by shutdown: the range stays in flight for the next start.
    if (result.status !== 'permanent') return false
    // A store whose failed insert may have kept rows (ClickHouse, when a view
    // failed after the table was written) must not get them again.
    const held = await heldAlready(batch)
    if (!held) return false
    if (held.size > 0) {
      logger.warn({ exporter: name, rows: held.size, err: result.error.message }, `${name}: a failed insert left rows in the store; they are not sent again`)
      stats.exported += held.size
      batch = batch.filter((a) => !held.has(a.id))
      if (batch.length === 0) return true
    }
    if (batch.length === 1) {
      stats.rejected++
      stats.last_dead_letter = { at: Date.now(), reason: result.error.message }
      await deadLetter.write(batch, result.error)
      logger.error({ exporter: name, id: batch[0]!.id, err: result.error.message }, `${name}: row rejected for good, written to the dead-letter file`)
      return true
    }
    // One bad row must not take 9,999 good ones with it: halve until the
    // rows the store refuses stand alone.
    const middle = batch.length >>> 1
    return (await deliver(batch.slice(0, middle), true, resend)) && (await deliver(batch.slice(middle), true, resend))
  }

  function due(): boolean {
    return waitingSince !== undefined && Date.now() - waitingSince >= config.timeout_ms
  }

  /**
   * Until the log grows, `ms` pass, or shutdown. A plain timer, not
   * AbortSignal.any([AbortSignal.timeout()]): Node can garbage-collect a
   * timeout signal inside a composite before it fires (nodejs/node#57736),
   * which left a partial batch waiting for the next request, forever if
   * none came.
   */
  function waitForData(ms: number, untilFull = false): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        wal.events.off('append', appended)
        wake.signal.removeEventListener('abort', done)
        resolve()
      }
      // A partial batch waits for its timer: waking the loop on every
      // request only to wait again cost each request a turn of every
      // exporter's loop, a timer and a promise (bench:rates).
      const appended = () => {
        if (!untilFull || full()) done()
      }
      const timer = setTimeout(done, Math.max(1, ms))
      wal.events.on('append', appended)
      wake.signal.addEventListener('abort', done)
    })
  }

  function full(): boolean {
    return wal.countFrom(cursor.committed) >= config.send_batch_size || wal.end - cursor.committed >= config.send_batch_max_bytes
  }

  let registered: Promise<Cursor> | undefined
  const register = () => (registered ??= wal.cursor(name).then((c) => (cursor = c)))

  async function loop(): Promise<void> {
    await register()
    // Read again: after an error the loop resumes from what was persisted, in-flight range included.
    cursor = await wal.cursor(name)
    if (cursor.inflight) {
      logger.info({ exporter: name, range: cursor.inflight }, `${name}: sending again the batch in flight at the last stop`)
      if (!(await exportRange(cursor.inflight.start, cursor.inflight.end, undefined, randomUUID()))) return
    }
    for (;;) {
      const available = wal.countFrom(cursor.committed)
      if (available === 0) {
        waitingSince = undefined
        if (stopping) return
        await waitForData(60_000)
        continue
      }
      waitingSince ??= Date.now()
      if (stopping && Date.now() >= deadline) return
      if (!full() && !due() && !stopping) {
        await waitForData(waitingSince + config.timeout_ms - Date.now(), true)
        continue
      }
      const { activities, next } = await wal.read(cursor.committed, config.send_batch_size, Infinity, config.send_batch_max_bytes)
      waitingSince = undefined
      if (!(await exportRange(cursor.committed, next, activities))) return
    }
  }

  return {
    stats,
    health: exporter.health,
    register: async () => void (await register()),

    get exporting() {
      return exporting
    },

    get pending() {
      return wal.countFrom(cursor.committed)
    },

    async start() {
      // An unexpected error (a failed read or cursor write) must not stop
      // this exporter for good: log it, wait, and resume from the cursor.
      running ??= (async () => {
        for (;;) {
          try {
            return await loop()
          } catch (err) {
            logger.error({ exporter: name, err: (err as Error).message }, `${name}: reading the write-ahead log failed; resuming from the cursor in 1 s`)
            if (stopping) return
            await sleep(1000)
          }
        }
      })()
    },

    async shutdown(until = Infinity) {
      stopping = true
      deadline = until
      wake.abort()
      const timer = Number.isFinite(until) ? setTimeout(() => exporter.abort(), Math.max(0, until - Date.now())) : undefined
      await running
      clearTimeout(timer)
      const left = wal.countFrom(cursor.committed)
      if (left > 0) logger.warn({ exporter: name, rows: left }, `${name}: not exported before shutdown; kept in the write-ahead log for the next start`)
    },
  }
}
