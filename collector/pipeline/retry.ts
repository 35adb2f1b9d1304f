/**
 * Wraps an exporter so failures are retried with the one backoff
 * (lib/backoff.ts: exponential, full jitter).
 *
 * - An outage (`retryable`) is retried without bound: the rows are fine and
 *   giving up would lose them; a down store fills the log and ingest pushes
 *   back (429) instead.
 * - An `unknown` failure is retried for `max_elapsed_ms` since its first
 *   occurrence (the Collector's exporterhelper bounds every retry by
 *   max_elapsed_time, 5 minutes by default), then answered as `permanent`,
 *   so the batch processor splits the batch and dead-letters the rows that
 *   still fail: no error nobody foresaw can stall the exporter.
 * - `permanent` passes straight through.
 */
import { z } from 'zod'
import type { Exporter, ExportAttempt, ExportResult, Logger } from '../../schemas/component.ts'
import { backoffDelay } from '../../lib/backoff.ts'
import { sleep } from '../../lib/sleep.ts'

export const RetryConfig = z
  .object({
    /** First backoff ceiling. @default 200 */
    initial_interval_ms: z.number().int().positive().default(200),
    /** Backoff ceiling never grows past this. @default 30000 */
    max_interval_ms: z.number().int().positive().default(30_000),
    /** Growth of the ceiling per attempt. @default 2 */
    multiplier: z.number().min(1).default(2),
    /**
     * How long a batch failing with an error that is neither an outage nor a
     * data error is retried before its rows are isolated and dead-lettered.
     * Outages are retried without bound. @default 300000 (5 minutes)
     */
    max_elapsed_ms: z.number().int().min(0).default(300_000),
  })
  .strict()
  .refine((c) => c.max_interval_ms >= c.initial_interval_ms, {
    message: 'max_interval_ms must be >= initial_interval_ms',
    path: ['max_interval_ms'],
  })

export type RetryConfig = z.output<typeof RetryConfig>

/** Where an exporter stands, for /readyz and /metrics. */
export interface ExporterHealth {
  /** Since when its current batch has been failing; undefined while exports go through. */
  failingSince?: number
  lastError?: string
  /** Attempts that failed and were retried, since start. */
  retries: number
}

export interface ExportOptions extends ExportAttempt {
  /** Overrides max_elapsed_ms for unknown failures (the split halves of a batch that gave up get 0: one try each). */
  unknownRetryMs?: number
}

export interface RetryingExporter extends Exporter {
  export(batch: Parameters<Exporter['export']>[0], options?: ExportOptions): Promise<ExportResult>
  /** Stop retrying (shutdown): the pending export returns its last failure. */
  abort(): void
  readonly health: Readonly<ExporterHealth>
}

export function withRetry(inner: Exporter, config: RetryConfig, logger: Logger, now: () => number = Date.now): RetryingExporter {
  const aborter = new AbortController()
  const health: ExporterHealth = { retries: 0 }

  return {
    name: inner.name,
    health,
    start: () => inner.start(),
    shutdown: () => inner.shutdown(),
    ping: () => inner.ping(),
    ...(inner.reclaimMemory && { reclaimMemory: () => inner.reclaimMemory!() }),
    ...(inner.stored && { stored: (ids: readonly string[]) => inner.stored!(ids) }),
    abort: () => aborter.abort(),

    async export(batch, options = {}): Promise<ExportResult> {
      const unknownBound = options.unknownRetryMs ?? config.max_elapsed_ms
      let unknownSince: number | undefined
      for (let attempt = 0; ; attempt++) {
        const result = await inner.export(batch, { resend: options.resend })
        if (result.status === 'success') {
          health.failingSince = undefined
          return result
        }
        health.failingSince ??= now()
        health.lastError = result.error.message
        if (result.status === 'permanent') return result
        if (result.status === 'unknown') {
          unknownSince ??= now()
          if (now() - unknownSince >= unknownBound) {
            logger.error(
              { exporter: inner.name, rows: batch.length, err: result.error.message, elapsed_ms: now() - unknownSince },
              `${inner.name}: export kept failing with an error that is neither an outage nor a data error; isolating the rows that fail`,
            )
            return { status: 'permanent', error: result.error }
          }
        }
        if (aborter.signal.aborted) return result
        const delay = (result.status === 'retryable' && result.retryAfterMs) || backoffDelay(config, attempt)
        health.retries++
        logger.warn(
          { exporter: inner.name, attempt: attempt + 1, delay_ms: delay, rows: batch.length, class: result.status === 'retryable' ? 'outage' : 'unknown', err: result.error.message },
          `${inner.name}: export failed, retrying`,
        )
        await sleep(delay, aborter.signal)
      }
    },
  }
}
