/**
 * Refuses new data before the process reaches its memory limit, like the
 * Collector's memory_limiter: past the soft limit (limit_mib - spike_limit_mib)
 * ingest answers 429 (or 503 on OTLP) with Retry-After instead of letting
 * memory grow until the OOM killer takes everything, acknowledged data
 * included. The spike allowance is what requests already admitted and the
 * exporters' batches use on top: measured at 140-180 MB under a flood of
 * 2,000-event requests on 16 connections.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
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
    /**
     * Least time between two reclaims while over the soft limit (a full V8
     * collection plus the engines' allocator purge, tens of milliseconds).
     * @default 1000
     */
    min_reclaim_interval_ms: z.number().int().min(100).default(1_000),
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

/**
 * While over the soft limit, the limiter reclaims: a full V8 collection and
 * `reclaim`, which asks the components to give back memory they hold but do
 * not use (the embedded engine's freed allocator pages), as the OpenTelemetry
 * Collector's limiter forces a GC (its min_gc_interval_when_soft_limited).
 * Under a flood V8 lets garbage from the exporters' batches pile up to
 * ~150 MB before it collects by itself, and the engines keep freed pages:
 * measured under the overload test's flood, reclaiming every second took the
 * peak from 831-912 MiB to 736-781 MiB, and the collector accepted twice as
 * much, because the memory it refused for was given back.
 */
export function createMemoryLimiter(config: MemoryLimiterConfig, reclaim?: () => Promise<void>): MemoryLimiter {
  let over = false
  let reclaiming = false
  let lastReclaim = 0
  const spike = config.spike_limit_mib ?? Math.round(config.limit_mib / 4)
  const limit = (config.limit_mib - spike) * 1024 * 1024
  const check = () => {
    // process.memoryUsage.rss() is a cheap syscall, but not per request.
    over = process.memoryUsage.rss() > limit
    if (!over || reclaiming || Date.now() - lastReclaim < config.min_reclaim_interval_ms) return
    reclaiming = true
    lastReclaim = Date.now()
    collectGarbage()
    Promise.resolve(reclaim?.()).finally(() => (reclaiming = false))
  }
  const timer = limit > 0 ? setInterval(check, config.check_interval_ms) : undefined
  timer?.unref()
  return {
    over: () => over,
    stop: () => clearInterval(timer),
  }
}

let gc: (() => void) | undefined
/** global.gc without starting node with --expose-gc: the flag can be set at run time. */
function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
}
