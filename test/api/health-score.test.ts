/** /health/score over recent traffic: each part from the raw figures, by the documented formula. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { points, status } from '../../api/health-score-route.ts'
import { eventually, post, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

describe('health score', () => {
  const dir = tempDir()
  let c: RunningCollector
  const N = 400

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path, { api: { health_score: { error_rate_budget: 0.2, latency_target_ms: 500 } } }))
    const now = Date.now()
    // 10% failures; durations 0..1995 ms; each event 3 s old when sent.
    const events = Array.from({ length: N }, (_, i) => ({
      source: 'user',
      action: 'checkout',
      status: i % 10 === 0 ? 'failure' : 'success',
      duration_ms: (i * 5) % 2000,
      timestamp: new Date(now - 3_000 - (i % 60) * 1000).toISOString(),
    }))
    expect((await post(c.url, JSON.stringify(events))).status).toBe(200)
    const { clickhouse } = storesOf(c.collector)
    await eventually('rows stored', async () => {
      const [r] = await (await clickhouse.query({ query: 'SELECT count() AS n FROM actline.activities', format: 'JSONEachRow' })).json<{ n: string }>()
      return Number(r!.n) === N
    })
  })

  afterAll(async () => {
    await c?.collector.shutdown()
    dir.remove()
  })

  it('scores errors, latency and lag as documented', async () => {
    const r = (await (await fetch(`${c.url}/api/v1/health/score`)).json()) as any
    expect(r.events).toBe(N)
    expect(r.parts.errors.value).toBeCloseTo(0.1, 12)
    // 50 points, none at the 20% budget: 10% scores half.
    expect(r.parts.errors.points).toBeCloseTo(25, 9)
    // p95 of 0..1995 ms is ~1900 (t-digest); 30 points, full at 500, none at 2000.
    expect(Math.abs(r.parts.latency.value - 1900)).toBeLessThan(60)
    expect(r.parts.latency.points).toBeCloseTo(points(30, r.parts.latency.value, 500, 2000), 9)
    // Events arrived ~3-63 s late: p95 lag ~60 s, past 10x the 5 s target: no lag points.
    expect(r.parts.lag.value).toBeGreaterThan(50_000)
    expect(r.parts.lag.points).toBe(0)
    const score = Math.round(r.parts.errors.points + r.parts.latency.points + r.parts.lag.points)
    expect(r.score).toBe(score)
    expect(r.status).toBe(status(score))
    expect(r.status).toBe('unhealthy')
  })
})
