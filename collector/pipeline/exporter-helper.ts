/**
 * One exporter's whole delivery path, composed in one place (the
 * Collector's exporterhelper): its store started in the background and
 * retried until up, a batch processor reading the write-ahead log from the
 * exporter's own cursor, retry with its bound, the split and dead letter of
 * rows the store refuses, and abort at the shutdown deadline. The
 * exporter's own classifier (its folder's classify.ts) decides which of
 * these an error takes: it reports outcomes, this acts on them.
 *
 * Shutdown order, each step only after the one before:
 *  1. stop retrying the store's start (one still connecting gets until the deadline);
 *  2. drain: export what the log holds until caught up or the deadline; at
 *     the deadline the retry in progress is aborted, and its batch stays in
 *     the log as the cursor's in-flight range for the next start;
 *  3. (the caller closes the log: draining saves cursors into it);
 *  4. close the store's connection.
 */
import type { Activity } from '../../schemas/activity.ts'
import type { Exporter, Logger } from '../../schemas/component.ts'
import { sleep } from '../../lib/sleep.ts'
import type { WriteAheadLog } from '../wal/write-ahead-log.ts'
import { createBatchProcessor, type BatchProcessor, type BatchProcessorConfig } from './batch-processor.ts'
import { createDeadLetter } from './dead-letter.ts'
import { withRetry, type RetryConfig } from './retry.ts'
import { startInBackground, type StoreStart } from './store-start.ts'

export interface ExporterPipeline {
  readonly name: string
  /** The store's exporter itself, for readers. */
  readonly exporter: Exporter
  /** Its reader of the log: pending rows, stats, retry health. */
  readonly queue: BatchProcessor
  /** Why its store is not started yet, or undefined once it is. */
  starting(): string | undefined
  /** Register the cursor with the log, before anything is read or deleted. */
  register(): Promise<void>
  /** Start the store in the background; the log's reader starts once it is up. Resolves after the first attempt. */
  start(): Promise<void>
  /** Steps 1 and 2 of the shutdown order. */
  drain(deadline: number): Promise<void>
  /** Step 4. */
  close(): Promise<void>
}

export interface ExporterPipelineOptions {
  exporter: Exporter
  accepts?: (a: Activity) => boolean
  wal: WriteAheadLog
  batch: BatchProcessorConfig
  retry: RetryConfig
  deadLetterDir: string
  logger: Logger
}

export function createExporterPipeline({ exporter, accepts, wal, batch, retry, deadLetterDir, logger }: ExporterPipelineOptions): ExporterPipeline {
  const queue = createBatchProcessor({
    config: batch,
    wal,
    exporter: withRetry(exporter, retry, logger),
    ...(accepts && { accepts }),
    deadLetter: createDeadLetter(deadLetterDir, exporter.name),
    logger,
  })
  let store: StoreStart | undefined

  return {
    name: exporter.name,
    exporter,
    queue,
    starting: () => (store ? store.pending() : 'not started'),
    register: () => queue.register(),
    start() {
      store ??= startInBackground(exporter, retry, logger, () => queue.start())
      return store.firstAttempt
    },
    async drain(deadline) {
      await Promise.race([store?.stop(), sleep(Math.max(0, deadline - Date.now()))])
      await queue.shutdown(deadline)
    },
    close: () => exporter.shutdown(),
  }
}
