/**
 * Refuses new data before the process reaches its memory limit, like the
 * Collector's memory_limiter: past the soft limit (limit_mib - spike_limit_mib)
 * ingest answers 429 (or 503 on OTLP) with Retry-After instead of letting
 * memory grow until the OOM killer takes everything, acknowledged data
 * included. The spike allowance is what requests already admitted and the
 * exporters' batches use on top: measured at 140-180 MB under a flood of
 * 2,000-event requests on 16 connections.
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
    /** Headroom under limit_mib for what is already in flight; refusing starts at limit - spike. @default 25% of limit_mib */
    spike_limit_mib: z.number().int().min(0).optional(),
    /** How often resident memory is read. @default 100 */
    check_interval_ms: z.number().int().min(10).default(100),
  })
  .strict()
  .refine((c) => c.limit_mib === 0 || (c.spike_limit_mib ?? 0) < c.limit_mib, {
    message: 'spike_limit_mib must be < limit_mib',
    path: ['spike_limit_mib'],
  })

export type MemoryLimiterConfig = z.output<typeof MemoryLimiterConfig>

export interface MemoryLimiter {
  /** True while resident memory is over the soft limit (limit_mib - spike_limit_mib). */
  over(): boolean
  stop(): void
}

export function createMemoryLimiter(config: MemoryLimiterConfig): MemoryLimiter {
  let over = false
  const spike = config.spike_limit_mib ?? Math.round(config.limit_mib / 4)
  const limit = (config.limit_mib - spike) * 1024 * 1024
  // process.memoryUsage.rss() is a cheap syscall, but not per request.
  const timer = limit > 0 ? setInterval(() => (over = process.memoryUsage.rss() > limit), config.check_interval_ms) : undefined
  timer?.unref()
  return {
    over: () => over,
    stop: () => clearInterval(timer),
  }
}
