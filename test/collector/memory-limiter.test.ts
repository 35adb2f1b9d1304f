import { describe, expect, it } from 'vitest'
import { createMemoryLimiter, MemoryLimiterConfig } from '../../collector/pipeline/memory-limiter.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const MiB = 1024 * 1024

describe('memory limiter', () => {
  it('refuses and reclaims while over the soft limit under traffic, at most once per min_reclaim_interval_ms', async () => {
    let reclaims = 0
    // A soft limit of 1 MiB: any node process is over it.
    const limiter = createMemoryLimiter(MemoryLimiterConfig.parse({ limit_mib: 2, spike_limit_mib: 1, check_interval_ms: 10, min_reclaim_interval_ms: 200 }), {
      reclaim: async () => void reclaims++,
    })
    // Requests keep being admitted: the process is busy, not idle.
    const traffic = setInterval(() => limiter.admitted(), 2)
    try {
      await sleep(500)
      expect(limiter.over()).toBe(true)
      // 500 ms at 10 ms checks, but reclaims spaced 200 ms apart: 2 or 3.
      expect(reclaims).toBeGreaterThanOrEqual(2)
      expect(reclaims).toBeLessThanOrEqual(3)
    } finally {
      clearInterval(traffic)
      limiter.stop()
    }
  })

  it('collects the garbage of the JavaScript heap when it reclaims', async () => {
    let collected = false
    const registry = new FinalizationRegistry(() => (collected = true))
    ;(() => registry.register({ big: new Array(1000).fill('garbage') }, 'x'))()
    const limiter = createMemoryLimiter(MemoryLimiterConfig.parse({ limit_mib: 2, spike_limit_mib: 1, check_interval_ms: 10 }))
    try {
      for (let i = 0; i < 50 && !collected; i++) await sleep(20)
      expect(collected).toBe(true)
    } finally {
      limiter.stop()
    }
  })

  it('neither refuses nor reclaims under the limit', async () => {
    let reclaims = 0
    const limiter = createMemoryLimiter(MemoryLimiterConfig.parse({ limit_mib: 1_000_000, check_interval_ms: 10 }), { reclaim: async () => void reclaims++ })
    try {
      await sleep(100)
      expect(limiter.over()).toBe(false)
      expect(reclaims).toBe(0)
    } finally {
      limiter.stop()
    }
  })

  it('admits again once idle when memory stays high after a reclaim, then refuses only past the spike allowance above it', async () => {
    let rss = 900 * MiB // an engine kept its pages after one big read
    let exporting = true
    const limiter = createMemoryLimiter(MemoryLimiterConfig.parse({ limit_mib: 1024, spike_limit_mib: 256, check_interval_ms: 10, min_reclaim_interval_ms: 100 }), {
      rss: () => rss,
      exporting: () => exporting,
    })
    try {
      await sleep(60)
      expect(limiter.over()).toBe(true) // an export is running: memory may be in use
      exporting = false
      await sleep(250) // idle, a reclaim ran, still 900 MiB: held, not used
      expect(limiter.over()).toBe(false)
      expect(limiter.state()).toMatchObject({ soft_limit: 1156 * MiB, rebases: 1 })
      rss = 1100 * MiB
      limiter.admitted()
      await sleep(30)
      expect(limiter.over()).toBe(false) // within the spike allowance above the idle level
      rss = 1200 * MiB
      const traffic = setInterval(() => limiter.admitted(), 2)
      await sleep(60)
      expect(limiter.over()).toBe(true) // work in flight adds more than the allowance
      clearInterval(traffic)
      rss = 500 * MiB // the engines gave it back
      await sleep(30)
      expect(limiter.over()).toBe(false)
      expect(limiter.state().soft_limit).toBe(768 * MiB) // back to limit - spike
    } finally {
      limiter.stop()
    }
  })

  it('reclaims once when quiet near the limit, so what a burst left does not cost the next one its headroom', async () => {
    let reclaims = 0
    const limiter = createMemoryLimiter(MemoryLimiterConfig.parse({ limit_mib: 1024, spike_limit_mib: 256, check_interval_ms: 10, min_reclaim_interval_ms: 100 }), {
      rss: () => 700 * MiB, // under the 768 MiB soft limit, over 80% of it
      reclaim: async () => void reclaims++,
    })
    try {
      await sleep(200)
      expect(limiter.over()).toBe(false)
      expect(reclaims).toBe(1) // once per quiet spell
      limiter.admitted()
      await sleep(150)
      expect(reclaims).toBe(2) // busy, then quiet again: once more
    } finally {
      limiter.stop()
    }
  })
})
