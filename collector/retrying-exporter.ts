/**
 * Wraps an exporter so retryable failures are retried with exponential
 * backoff and full jitter (AWS' "Exponential Backoff And Jitter": a random
 * delay in [0, min(cap, base * 2^n)] spreads out a herd of collectors that
 * all saw the store go down at once). Permanent failures pass straight through.
 */
import { z } from 'zod'
import type { Exporter, ExportResult, Logger } from '../schemas/component.ts'

export const RetryConfig = z
  .object({
    /** First backoff ceiling. @default 200 */
    initial_interval_ms: z.number().int().positive().default(200),
    /** Backoff ceiling never grows past this. @default 30000 */
    max_interval_ms: z.number().int().positive().default(30_000),
    /** Growth of the ceiling per attempt. @default 2 */
    multiplier: z.number().min(1).default(2),
    // No max_elapsed: a batch is retried until shutdown. Giving up would
    // leave it in the log with nothing to send it; a down store fills the
    // log and ingest pushes back (429) instead.
  })
  .strict()
  .refine((c) => c.max_interval_ms >= c.initial_interval_ms, {
    message: 'max_interval_ms must be >= initial_interval_ms',
    path: ['max_interval_ms'],
  })

export type RetryConfig = z.output<typeof RetryConfig>

/** Full-jitter delay for attempt n (0-based). Exported for its unit test. */
export function backoffDelay(config: RetryConfig, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(config.max_interval_ms, config.initial_interval_ms * config.multiplier ** attempt)
  return Math.floor(random() * ceiling)
}

export interface RetryingExporter extends Exporter {
  /** Stop retrying (shutdown): the pending export returns its last failure. */
  abort(): void
}

export function withRetry(inner: Exporter, config: RetryConfig, logger: Logger): RetryingExporter {
  const aborter = new AbortController()

  return {
    name: inner.name,
    start: () => inner.start(),
    shutdown: () => inner.shutdown(),
    ping: () => inner.ping(),
    abort: () => aborter.abort(),

    async export(batch): Promise<ExportResult> {
      for (let attempt = 0; ; attempt++) {
        const result = await inner.export(batch)
        if (result.status !== 'retryable' || aborter.signal.aborted) return result
        const delay = result.retryAfterMs ?? backoffDelay(config, attempt)
        logger.warn(
          { exporter: inner.name, attempt: attempt + 1, delay_ms: delay, rows: batch.length, err: result.error.message },
          `${inner.name}: export failed, retrying`,
        )
        await sleep(delay, aborter.signal)
      }
    },
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}
