/**
 * A bounded queue in front of one exporter that sends in batches by size or
 * age, like the Collector's batch processor plus exporterhelper's queue. Each
 * exporter gets its own, so a slow store backs up only its own queue.
 *
 * Defaults, against the legacy service's 500 rows every 5 s:
 * - send_batch_size 10,000: ClickHouse wants few, large inserts (each insert
 *   is a part to merge; its docs advise >= 1,000 rows and about one insert per
 *   second per table), and 10k rows of ~400 B is ~4 MB, which both stores take
 *   in tens of milliseconds.
 * - timeout_ms 1,000: a quiet collector still makes rows queryable within a
 *   second, at most one small insert per second per store.
 * - queue_size 100,000: two seconds of the 50k/s target, so a store pause
 *   rides through without pushing back on clients, at ~100 MB of memory in
 *   the worst case, inside the 400 MB budget.
 */
import { z } from 'zod'
import type { Activity } from '../schemas/activity.ts'
import type { Exporter, Logger, Processor } from '../schemas/component.ts'

export const BatchProcessorConfig = z
  .object({
    /** Rows per export. @default 10000 */
    send_batch_size: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Oldest row waits at most this long before a partial batch is sent. @default 1000 */
    timeout_ms: z.number().int().min(1).max(600_000).default(1_000),
    /** Rows held per exporter before ingest is refused with 429. @default 100000 */
    queue_size: z.number().int().min(1).default(100_000),
  })
  .strict()
  .refine((c) => c.queue_size >= c.send_batch_size, {
    message: 'queue_size must be >= send_batch_size',
    path: ['queue_size'],
  })

export type BatchProcessorConfig = z.output<typeof BatchProcessorConfig>

export interface BatchStats {
  /** Rows the store acknowledged. */
  exported: number
  /** Rows the store rejected for good. */
  rejected: number
  /** Rows given up on at shutdown. */
  dropped: number
  /** Export calls and their summed duration, for the mean export latency. */
  exports: number
  export_seconds: number
}

export interface BatchProcessor extends Processor {
  /** Rows waiting or in flight. */
  readonly pending: number
  readonly stats: Readonly<BatchStats>
  /** Stop accepting, export what is held; resolves when empty or when `deadline` passes. */
  shutdown(deadline?: number): Promise<void>
}

export function createBatchProcessor(config: BatchProcessorConfig, exporter: Exporter & { abort?(): void }, logger: Logger): BatchProcessor {
  // Chunks as they arrived, with their arrival time: concatenating per
  // request would copy every row twice, and the timer is due when the oldest
  // row has waited timeout_ms.
  const chunks: { rows: readonly Activity[]; at: number }[] = []
  let queued = 0
  let inFlight = 0
  let timer: NodeJS.Timeout | undefined
  let due = false
  let running: Promise<void> | undefined
  let stopping = false
  const stats: BatchStats = { exported: 0, rejected: 0, dropped: 0, exports: 0, export_seconds: 0 }

  function take(max: number): Activity[] {
    const batch: Activity[] = []
    while (batch.length < max && chunks.length > 0) {
      const head = chunks[0]!
      const n = Math.min(head.rows.length, max - batch.length)
      for (let i = 0; i < n; i++) batch.push(head.rows[i]!)
      if (n === head.rows.length) chunks.shift()
      else head.rows = head.rows.slice(n)
    }
    queued -= batch.length
    return batch
  }

  function ready(): boolean {
    return queued > 0 && (queued >= config.send_batch_size || due || stopping)
  }

  async function drain(): Promise<void> {
    while (ready()) {
      due = false
      const batch = take(config.send_batch_size)
      inFlight = batch.length
      const started = performance.now()
      const result = await exporter.export(batch)
      stats.exports++
      stats.export_seconds += (performance.now() - started) / 1000
      inFlight = 0
      if (result.status === 'success') stats.exported += batch.length
      else if (result.status === 'permanent') {
        stats.rejected += batch.length
        logger.error({ exporter: exporter.name, rows: batch.length, err: result.error.message }, `${exporter.name}: batch rejected for good`)
      } else {
        // Retrying stopped: shutdown came, or retry.max_elapsed_ms passed.
        stats.dropped += batch.length
        logger.error({ exporter: exporter.name, rows: batch.length, err: result.error.message }, `${exporter.name}: batch dropped, retrying stopped`)
      }
    }
    if (queued > 0) arm()
  }

  function kick(): void {
    running ??= drain().finally(() => {
      running = undefined
      if (ready()) kick()
    })
  }

  function arm(): void {
    if (timer || chunks.length === 0) return
    const wait = Math.max(0, chunks[0]!.at + config.timeout_ms - Date.now())
    timer = setTimeout(() => {
      timer = undefined
      due = true
      kick()
    }, wait)
    timer.unref()
  }

  return {
    get pending() {
      return queued + inFlight
    },

    stats,

    capacity() {
      return stopping ? 0 : config.queue_size - queued - inFlight
    },

    consume(activities) {
      if (activities.length === 0) return true
      if (stopping || queued + inFlight + activities.length > config.queue_size) return false
      chunks.push({ rows: activities, at: Date.now() })
      queued += activities.length
      if (queued >= config.send_batch_size) kick()
      else arm()
      return true
    },

    async start() {},

    async shutdown(deadline = Infinity) {
      stopping = true
      clearTimeout(timer)
      timer = undefined
      kick()
      const timeout = deadline - Date.now()
      if (Number.isFinite(timeout)) {
        const t = setTimeout(() => exporter.abort?.(), Math.max(0, timeout))
        await running
        clearTimeout(t)
      } else {
        await running
      }
      if (queued > 0) {
        stats.dropped += queued
        logger.error({ exporter: exporter.name, rows: queued }, `${exporter.name}: rows dropped at shutdown`)
      }
    },
  }
}
