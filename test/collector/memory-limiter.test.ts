import { describe, expect, it } from 'vitest'
import { createMemoryLimiter, MemoryLimiterConfig } from '../../collector/memory-limiter.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('memory limiter', () => {
  it('refuses and reclaims while over the soft limit, at most once per min_reclaim_interval_ms', async () => {
    let reclaims = 0
    // A soft limit of 1 MiB: any node process is over it.
    const limiter = createMemoryLimiter(MemoryLimiterConfig.parse({ limit_mib: 2, spike_limit_mib: 1, check_interval_ms: 10, min_reclaim_interval_ms: 200 }), async () => {
      reclaims++
    })
    try {
      await sleep(500)
      expect(limiter.over()).toBe(true)
      // 500 ms at 10 ms checks, but reclaims spaced 200 ms apart: 2 or 3.
      expect(reclaims).toBeGreaterThanOrEqual(2)
      expect(reclaims).toBeLessThanOrEqual(3)
    } finally {
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
    const limiter = createMemoryLimiter(MemoryLimiterConfig.parse({ limit_mib: 1_000_000, check_interval_ms: 10 }), async () => {
      reclaims++
    })
    try {
      await sleep(100)
      expect(limiter.over()).toBe(false)
      expect(reclaims).toBe(0)
    } finally {
      limiter.stop()
    }
  })
})
