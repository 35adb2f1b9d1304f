/**
 * Refuses new data while the process is over its memory limit, like the
 * Collector's memory_limiter: past it, ingest answers 429 (or 503 on OTLP)
 * with Retry-After instead of letting the heap grow until the OOM killer
 * takes everything, acknowledged data included.
 */
import { z } from 'zod'

export const MemoryLimiterConfig = z
  .object({
    /**
     * Resident memory above which new requests are refused; 0 disables. The
     * idle collector with both embedded engines is ~470 MB.
     * @default 1024
     */
    limit_mib: z.number().int().min(0).default(1024),
    /** How often resident memory is read. @default 100 */
    check_interval_ms: z.number().int().min(10).default(100),
  })
  .strict()

export type MemoryLimiterConfig = z.output<typeof MemoryLimiterConfig>

export interface MemoryLimiter {
  /** True while resident memory is over the limit. */
  over(): boolean
  stop(): void
}

export function createMemoryLimiter(config: MemoryLimiterConfig): MemoryLimiter {
  let over = false
  const limit = config.limit_mib * 1024 * 1024
  // process.memoryUsage.rss() is a cheap syscall, but not per request.
  const timer = limit > 0 ? setInterval(() => (over = process.memoryUsage.rss() > limit), config.check_interval_ms) : undefined
  timer?.unref()
  return {
    over: () => over,
    stop: () => clearInterval(timer),
  }
}
