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
  /** True while new requests are refused for memory. */
  over(): boolean
  /** A request was admitted (the limiter's measure of work arriving). */
  admitted(): void
  state(): MemoryLimiterState
  stop(): void
}

export interface MemoryLimiterState {
  rss: number
  /** Where refusing starts now: limit - spike, or higher after a rebase while idle. */
  soft_limit: number
  refusing: boolean
  /** Times the limiter found the process idle over its limit and admitted again. */
  rebases: number
}

export interface MemoryLimiterOptions {
  /** Give back memory held but not in use (the engines' freed pages). */
  reclaim?: () => Promise<void>
  /** Is an export running? With no request admitted either, the process is idle. */
  exporting?: () => boolean
  /** Resident memory now, bytes (for tests; the process' RSS by default). */
  rss?: () => number
  logger?: { warn(obj: object, msg: string): void }
}

/**
 * Resident memory is what the OOM killer looks at, so it is what is
 * measured; but RSS also holds memory nothing uses any more (an allocator
 * keeps freed pages, an engine its caches), and refusing for that memory
 * refuses forever: the refusal itself keeps the work away that would let
 * anything be freed. So:
 *
 * 1. Over the soft limit (limit_mib - spike_limit_mib), reclaim first: a
 *    full V8 collection and `reclaim` (the engines' allocator purge), as the
 *    OpenTelemetry Collector's limiter forces a GC. Refuse only if RSS is
 *    still over once it has run (or if one ran moments before the
 *    crossing, or RSS is over limit_mib itself); then reclaim at most once
 *    per min_reclaim_interval_ms while refusing. A query that leaves its
 *    pages with the allocator does not cost ingest a 429. Under a flood V8 lets garbage from the
 *    exporters' batches pile up to ~150 MB before it collects by itself;
 *    reclaiming every second took the overload test's peak from
 *    831-912 MiB to 736-781 MiB.
 * 2. If the process is idle (no request admitted, no export running) and a
 *    reclaim has run since it went idle, and RSS is still over, that memory
 *    is held, not used: nothing in flight can be holding it. The limiter
 *    rebases: refusing now starts at this RSS plus the spike allowance, and
 *    it admits again. When memory comes back down, the soft limit follows
 *    it back to its configured value.
 *
 * 3. When it turns quiet above 80% of the soft limit (after a burst), it
 *    reclaims once, so what a burst left behind does not cost the next
 *    burst, or a large read, its headroom.
 *
 * The limit is then a bound on what work in flight may add, never a wedge.
 * A genuine leak shows as RSS that grows across rebases (the
 * `actline_memory_limiter_rebases_total` counter, a warning each time).
 */
/** Share of the soft limit above which a process that turned quiet reclaims, once per quiet spell. */
const IDLE_RECLAIM_SHARE = 0.8

export function createMemoryLimiter(config: MemoryLimiterConfig, options: MemoryLimiterOptions = {}): MemoryLimiter {
  const MiB = 1024 * 1024
  const spike = (config.spike_limit_mib ?? Math.round(config.limit_mib / 4)) * MiB
  const floor = config.limit_mib * MiB - spike
  const readRss = options.rss ?? (() => process.memoryUsage.rss())
  let soft = floor
  let refusing = false
  let reclaiming = false
  let lastReclaim = 0
  let lastReclaimDone = 0
  let admittedSinceCheck = 0
  let idleSince: number | undefined
  /** When RSS went over the soft limit, while not yet refusing. */
  let crossedAt: number | undefined
  const hard = config.limit_mib * MiB
  /** A reclaim ran since the process last turned quiet (under the limit). */
  let reclaimedWhileQuiet = false
  let rss = 0
  let rebases = 0

  const reclaim = () => {
    reclaiming = true
    lastReclaim = Date.now()
    collectGarbage()
    Promise.resolve(options.reclaim?.()).finally(() => {
      reclaiming = false
      lastReclaimDone = Date.now()
    })
  }

  const check = () => {
    // process.memoryUsage.rss() is a cheap syscall, but not per request.
    rss = readRss()
    const busy = admittedSinceCheck > 0 || (options.exporting?.() ?? false)
    admittedSinceCheck = 0
    if (rss <= soft) {
      refusing = false
      idleSince = undefined
      crossedAt = undefined
      // Memory came back: the soft limit follows it down to the configured one.
      if (soft > floor && rss + spike < soft) soft = Math.max(floor, rss + spike)
      // Near the limit after a burst, and quiet now: give back what the
      // burst left in the allocators before the next one (or a big read)
      // has to be refused for it. Once per quiet spell: a reclaim costs tens of ms.
      if (busy) reclaimedWhileQuiet = false
      else if (!reclaimedWhileQuiet && !reclaiming && rss > IDLE_RECLAIM_SHARE * soft && Date.now() - lastReclaim >= config.min_reclaim_interval_ms) {
        reclaimedWhileQuiet = true
        reclaim()
      }
      return
    }
    if (!refusing && rss <= hard) {
      // Just over: is it memory in use, or pages the allocators keep? A
      // reclaim tells. Refuse only once one has run since the crossing (or
      // ran moments before it) and RSS is still over; up to the hard limit
      // the spike allowance covers the wait.
      crossedAt ??= Date.now()
      if (reclaiming) return
      if (lastReclaimDone < crossedAt && Date.now() - lastReclaim >= config.min_reclaim_interval_ms) return reclaim()
    }
    refusing = true
    if (!reclaiming && Date.now() - lastReclaim >= config.min_reclaim_interval_ms) reclaim()
    if (busy) {
      idleSince = undefined
      return
    }
    idleSince ??= Date.now()
    if (!reclaiming && lastReclaimDone > idleSince) {
      soft = rss + spike
      refusing = false
      rebases++
      options.logger?.warn(
        { rss_mib: Math.round(rss / MiB), soft_limit_mib: Math.round(soft / MiB), configured_soft_limit_mib: Math.round(floor / MiB) },
        'memory limiter: resident memory stays over the limit while idle (held by allocators and caches, not by work in flight); admitting again up to the spike allowance above it',
      )
    }
  }
  const timer = config.limit_mib > 0 ? setInterval(check, config.check_interval_ms) : undefined
  timer?.unref()
  return {
    over: () => refusing,
    admitted: () => void admittedSinceCheck++,
    state: () => ({ rss, soft_limit: soft, refusing, rebases }),
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
