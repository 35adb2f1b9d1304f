/**
 * The query API on a real collector with embedded stores: random activities
 * go in through the receiver (so the rollups' views fire as in production),
 * and every figure /trends, /breakdown and /activities returns is checked
 * against an independent computation over the rows the test generated.
 */
import { Ajv2020 } from 'ajv/dist/2020.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { caughtUp, eventually, post, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

const DAY = 86_400_000

/** Deterministic PRNG (mulberry32), so a failure reproduces. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Generated {
  id?: string
  timestamp: string
  source: string
  action: string
  status: 'success' | 'failure'
  actor_id?: string
  service: string
  duration_ms?: number
  details: { n: number; word: string }
}

const ACTIONS = ['order.create', 'order.cancel', 'user.login', 'report.export', 'invoice.pay'] as const
const SERVICES = ['api', 'web', 'billing'] as const
const WORDS = ['alpha', 'bravo', 'charlie', 'delta']

function exactQuantile(sorted: number[], q: number): number {
  // Linear interpolation between closest ranks: what a t-digest approximates.
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  return sorted[lo]! + (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!) * (pos - lo)
}

describe('query API (embedded stores)', () => {
  const dir = tempDir()
  let c: RunningCollector
  const rows: Generated[] = []
  // Ten whole days ending at the last midnight, so no bucket is still open.
  const end = Math.floor(Date.now() / DAY) * DAY
  const start = end - 10 * DAY
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${c.url}/api/v1${path}`, { headers })
    const text = await res.text()
    return { status: res.status, headers: res.headers, text, json: (() => { try { return JSON.parse(text) } catch { return undefined } })() as any }
  }

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path))
    const rnd = random(42)
    for (let i = 0; i < 3000; i++) {
      // Day 7 gets three times the traffic: the anomaly to find.
      const day = rnd() < 0.2 ? 7 : Math.floor(rnd() * 10)
      rows.push({
        timestamp: new Date(start + day * DAY + Math.floor(rnd() * DAY)).toISOString(),
        source: 'user',
        action: ACTIONS[Math.floor(rnd() ** 2 * ACTIONS.length)]!,
        status: rnd() < 0.1 ? 'failure' : 'success',
        ...(rnd() < 0.9 && { actor_id: `u${Math.floor(rnd() * 150)}` }),
        service: SERVICES[Math.floor(rnd() * SERVICES.length)]!,
        ...(rnd() < 0.95 && { duration_ms: Math.round(rnd() * 1000) }),
        details: { n: i, word: WORDS[i % WORDS.length]! },
      })
    }
    for (let i = 0; i < rows.length; i += 500) {
      const r = await post(c.url, JSON.stringify(rows.slice(i, i + 500)))
      expect(r.status).toBe(200)
    }
    const { clickhouse } = storesOf(c.collector)
    await caughtUp(c.collector)
    await eventually('all rows in ClickHouse', async () => {
      const [r] = await (await clickhouse.query({ query: 'SELECT count() AS n FROM actline.activities', format: 'JSONEachRow' })).json<{ n: string }>()
      return Number(r!.n) === rows.length
    })
  }, 180_000)

  afterAll(async () => {
    await c?.collector.shutdown()
    dir.remove()
  })

  const dayOf = (r: Generated) => Math.floor((Date.parse(r.timestamp) - start) / DAY)

  it('daily trends equal a computation over the raw rows: counts, failures, error rate, uniques, quantiles', async () => {
    const r = await get(`/trends?from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}&interval=day&metrics=count,failures,error_rate,unique_actors,p50,p95,p99`)
    expect(r.status).toBe(200)
    expect(r.json.buckets).toHaveLength(10)
    for (let d = 0; d < 10; d++) {
      const day = rows.filter((x) => dayOf(x) === d)
      const bucket = r.json.buckets[d]
      expect(bucket.time).toBe(new Date(start + d * DAY).toISOString())
      expect(bucket.count).toBe(day.length)
      expect(bucket.failures).toBe(day.filter((x) => x.status === 'failure').length)
      expect(bucket.error_rate).toBeCloseTo(bucket.failures / day.length, 12)
      const actors = new Set(day.flatMap((x) => (x.actor_id ? [x.actor_id] : []))).size
      expect(Math.abs(bucket.unique_actors - actors)).toBeLessThanOrEqual(Math.ceil(actors * 0.02))
      const durations = day.flatMap((x) => (x.duration_ms === undefined ? [] : [x.duration_ms])).sort((a, b) => a - b)
      // t-digest on a few hundred values: within 4% of the 0-1000 ms range.
      for (const [metric, q] of [['p50', 0.5], ['p95', 0.95], ['p99', 0.99]] as const) {
        expect(Math.abs(bucket[metric] - exactQuantile(durations, q))).toBeLessThan(40)
      }
    }
    expect(r.json.totals.count).toBe(rows.length)
    const allActors = new Set(rows.flatMap((x) => (x.actor_id ? [x.actor_id] : []))).size
    expect(Math.abs(r.json.totals.unique_actors - allActors)).toBeLessThanOrEqual(Math.ceil(allActors * 0.02))
    expect(r.json.previous_period.totals.count).toBe(0)
    expect(r.json.change_percent.count).toBeNull()
  })

  it('a filtered daily trend (read from the rollup keyed by every dimension) equals the raw rows too', async () => {
    const service = SERVICES[1]!
    const r = await get(`/trends?from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}&interval=day&service=${service}&metrics=count,failures,unique_actors,p50`)
    for (let d = 0; d < 10; d++) {
      const day = rows.filter((x) => dayOf(x) === d && x.service === service)
      const bucket = r.json.buckets[d]
      expect(bucket.count).toBe(day.length)
      expect(bucket.failures).toBe(day.filter((x) => x.status === 'failure').length)
      const actors = new Set(day.flatMap((x) => (x.actor_id ? [x.actor_id] : []))).size
      expect(Math.abs(bucket.unique_actors - actors)).toBeLessThanOrEqual(Math.ceil(actors * 0.02))
      const durations = day.flatMap((x) => (x.duration_ms === undefined ? [] : [x.duration_ms])).sort((a, b) => a - b)
      expect(Math.abs(bucket.p50 - exactQuantile(durations, 0.5))).toBeLessThan(40)
    }
  })

  it('the analysis matches the series it is computed from', async () => {
    const r = await get(`/trends?from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}&interval=day&metrics=count&forecast=3`)
    const counts: number[] = r.json.buckets.map((b: any) => b.count)
    const a = r.json.analysis.count
    const ma7 = counts.map((_, i) => (i < 6 ? null : counts.slice(i - 6, i + 1).reduce((x, y) => x + y, 0) / 7))
    a.moving_average_7.forEach((v: number | null, i: number) => (v === null ? expect(ma7[i]).toBeNull() : expect(v).toBeCloseTo(ma7[i]!, 9)))
    expect(a.moving_average_30.every((v: unknown) => v === null)).toBe(true)
    const n = counts.length
    const mx = (n - 1) / 2
    const my = counts.reduce((x, y) => x + y, 0) / n
    const sxy = counts.reduce((s, y, x) => s + (x - mx) * (y - my), 0)
    const sxx = counts.reduce((s, _, x) => s + (x - mx) ** 2, 0)
    expect(a.regression.slope).toBeCloseTo(sxy / sxx, 9)
    expect(a.regression.intercept).toBeCloseTo(my - (sxy / sxx) * mx, 9)
    expect(a.forecast.map((f: any) => f.time)).toEqual([10, 11, 12].map((d) => new Date(start + d * DAY).toISOString()))
    expect(a.forecast[0].value).toBeCloseTo(Math.max(0, a.regression.intercept + a.regression.slope * 10), 9)
    expect(a.forecast[0].lower).toBeLessThanOrEqual(a.forecast[0].value)
    expect(a.forecast[0].upper).toBeGreaterThan(a.forecast[0].value)
  })

  it('zero-fills buckets with no activity and compares with the previous period', async () => {
    // Five days before the data through its first five: the first five buckets are empty.
    const r = await get(`/trends?from=${new Date(start - 5 * DAY).toISOString()}&to=${new Date(start + 5 * DAY).toISOString()}&interval=day`)
    expect(r.json.buckets.slice(0, 5).map((b: any) => [b.count, b.failures, b.error_rate])).toEqual(Array(5).fill([0, 0, 0]))
    expect(r.json.buckets[5].count).toBe(rows.filter((x) => dayOf(x) === 0).length)
    // The next five days against these: the previous period holds days 0-4.
    const next = await get(`/trends?from=${new Date(start + 5 * DAY).toISOString()}&to=${new Date(start + 10 * DAY).toISOString()}&interval=day`)
    const cur = rows.filter((x) => dayOf(x) >= 5).length
    const prev = rows.filter((x) => dayOf(x) < 5).length
    expect(next.json.previous_period.totals.count).toBe(prev)
    expect(next.json.change_percent.count).toBeCloseTo(((cur - prev) / prev) * 100, 9)
  })

  it('hourly buckets, filters, and group_by with top-N add up to the raw rows', async () => {
    const from = new Date(start + 3 * DAY).toISOString()
    const to = new Date(start + 4 * DAY).toISOString()
    const hourly = await get(`/trends?from=${from}&to=${to}&interval=hour&status=failure`)
    expect(hourly.json.buckets).toHaveLength(24)
    const inDay = rows.filter((x) => dayOf(x) === 3)
    expect(hourly.json.buckets.reduce((s: number, b: any) => s + b.count, 0)).toBe(inDay.filter((x) => x.status === 'failure').length)
    const grouped = await get(`/trends?from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}&interval=day&group_by=action&top=2`)
    const byAction = new Map<string, number>()
    for (const x of rows) byAction.set(x.action, (byAction.get(x.action) ?? 0) + 1)
    const top2 = [...byAction].sort((a, b) => b[1] - a[1]).slice(0, 2)
    const groups = new Map<string, number>(grouped.json.groups.map((g: any) => [g.key, g.buckets.reduce((s: number, b: any) => s + b.count, 0)]))
    for (const [action, n] of top2) expect(groups.get(action)).toBe(n)
    expect(groups.get('(other)')).toBe(rows.length - top2[0]![1] - top2[1]![1])
    expect(groups.size).toBe(3)
  })

  it('breaks down by a dimension, largest first, with shares', async () => {
    const r = await get(`/breakdown?dimension=service&from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}`)
    expect(r.status).toBe(200)
    const expected = SERVICES.map((s) => [s, rows.filter((x) => x.service === s).length] as const).sort((a, b) => b[1] - a[1])
    expect(r.json.items.map((i: any) => [i.key, i.count])).toEqual(expected)
    expect(r.json.items.reduce((s: number, i: any) => s + i.share, 0)).toBeCloseTo(1, 9)
  })

  it('finds the day with three times the traffic as the anomaly', async () => {
    const r = await get(`/anomalies?from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}&interval=day`)
    expect(r.status).toBe(200)
    expect(r.json.anomalies.map((a: any) => [a.time, a.direction])).toEqual([[new Date(start + 7 * DAY).toISOString(), 'above']])
  })

  it('lists activities with filters and full-text search, newest first', async () => {
    const r = await get(`/activities?action=invoice.pay&status=failure&limit=1000`)
    const expected = rows.filter((x) => x.action === 'invoice.pay' && x.status === 'failure')
    expect(r.json.data).toHaveLength(expected.length)
    const times = r.json.data.map((x: any) => x.timestamp)
    expect(times).toEqual([...times].sort().reverse())
    expect(r.json.data[0]).toMatchObject({ source: 'user', action: 'invoice.pay', status: 'failure', details: { word: expect.any(String) } })
    const q = await get(`/activities?q=CHARLIE&limit=1000&service=web`)
    expect(q.json.data.length).toBe(rows.filter((x) => x.details.word === 'charlie' && x.service === 'web').length)
    expect(q.json.data.every((x: any) => x.details.word === 'charlie')).toBe(true)
  })

  it('counts what the same filters list', async () => {
    const all = await get(`/activities/count?from=${start}`)
    expect(all.json).toEqual({ count: rows.length })
    const some = await get(`/activities/count?from=${start}&action=invoice.pay&status=failure`)
    expect(some.json.count).toBe(rows.filter((x) => x.action === 'invoice.pay' && x.status === 'failure').length)
    const search = await get(`/activities/count?from=${start}&q=CHARLIE&service=web`)
    expect(search.json.count).toBe(rows.filter((x) => x.details.word === 'charlie' && x.service === 'web').length)
    const bad = await get('/activities/count?status=nope&cursor=x')
    expect(bad.status).toBe(400)
    expect(bad.json.error).toBe('ACT_ERR_VALIDATION')
  })

  it('serves the monitor at / to a browser, and its assets, from its own origin only', async () => {
    const page = await fetch(`${c.url}/`, { headers: { 'accept-encoding': 'gzip' } })
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'")
    const html = await page.text()
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1]
    expect(script).toBeDefined()
    const js = await fetch(`${c.url}${script}`)
    expect(js.status).toBe(200)
    expect(js.headers.get('cache-control')).toContain('immutable')
    const again = await fetch(`${c.url}${script}`, { headers: { 'if-none-match': js.headers.get('etag')! } })
    expect(again.status).toBe(304)
    expect((await fetch(`${c.url}/favicon.svg`)).status).toBe(200)
    expect((await fetch(`${c.url}/assets/nope.js`)).status).toBe(404)
  })

  it('a cursor walk returns every row exactly once, while rows are being inserted', async () => {
    const { clickhouse } = storesOf(c.collector)
    const before = await (await clickhouse.query({ query: 'SELECT toString(id) AS id FROM actline.activities', format: 'JSONEachRow' })).json<{ id: string }>()
    let inserting = true
    let inserted = 0
    const writer = (async () => {
      for (let i = 0; inserting && i < 200; i++) {
        // New rows land both ahead of and behind the cursor's position, inside
        // the ten days (day 10 would be an hour after the last midnight: in the
        // health score's window when the suite runs between 01:00 and 01:15).
        const batch = Array.from({ length: 20 }, (_, k) => ({
          source: 'user',
          action: 'concurrent.insert',
          timestamp: new Date(start + ((i * 20 + k) % 10) * DAY + 3_600_000).toISOString(),
        }))
        expect((await post(c.url, JSON.stringify(batch))).status).toBe(200)
        inserted += batch.length
        await new Promise((r) => setTimeout(r, 10))
      }
    })()
    const seen = new Map<string, number>()
    let cursor: string | null = null
    do {
      const r = await get(`/activities?limit=97&source=user${cursor ? `&cursor=${cursor}` : ''}`)
      expect(r.status).toBe(200)
      for (const x of r.json.data) seen.set(x.id, (seen.get(x.id) ?? 0) + 1)
      cursor = r.json.next_cursor
    } while (cursor)
    inserting = false
    await writer
    expect(inserted).toBeGreaterThan(0)
    expect([...seen].filter(([, n]) => n !== 1)).toEqual([])
    expect(before.filter((r) => !seen.has(r.id))).toEqual([])
  })

  it('rejects a bad query with a 400 that names the parameter', async () => {
    const bad = await get('/trends?interval=fortnight&metrics=count,p42')
    expect(bad.status).toBe(400)
    expect(bad.json.error).toBe('ACT_ERR_VALIDATION')
    expect(bad.json.details.issues.map((i: any) => i.parameter).sort()).toEqual(['interval', 'metrics'])
    const rowFilter = await get('/trends?actor=u1')
    expect(rowFilter.status).toBe(400)
    expect(rowFilter.json.message).toMatch(/actor/)
    expect((await get('/activities?limit=1001')).status).toBe(400)
    expect((await get('/activities?cursor=not-a-cursor')).json.error).toBe('ACT_ERR_VALIDATION')
    expect((await get('/activities?from=yesterday-ish')).json.message).toMatch(/not a time/)
    expect((await get('/trends?from=now-1d&to=now-2d')).json.message).toMatch(/before/)
    expect((await get('/trends?from=now-400d&interval=minute')).json.message).toMatch(/coarser interval/)
  })

  it('serves a repeated query from the cache, and counts it', async () => {
    const path = `/breakdown?dimension=action&from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}`
    const first = await get(path)
    const second = await get(path)
    expect(first.headers.get('x-cache')).toBe('miss')
    expect(second.headers.get('x-cache')).toBe('hit')
    expect(second.text).toBe(first.text)
    const stats = (await get('/cache/stats')).json
    expect(stats.hits).toBeGreaterThanOrEqual(1)
    expect(stats.size).toBeGreaterThanOrEqual(1)
    expect(stats.hit_rate).toBeCloseTo(stats.hits / (stats.hits + stats.misses), 12)
    const cleared = await fetch(`${c.url}/api/v1/cache/clear`, { method: 'POST' })
    expect((await cleared.json()).cleared).toBe(stats.size)
    expect((await get(path)).headers.get('x-cache')).toBe('miss')
  })

  it('reports a 0-100 health score with its parts', async () => {
    const r = await get('/health/score')
    expect(r.status).toBe(200)
    expect(r.json.score).toBeGreaterThanOrEqual(0)
    expect(r.json.score).toBeLessThanOrEqual(100)
    // Nothing in the last 15 minutes: every part scores full.
    expect(r.json).toMatchObject({ score: 100, status: 'healthy', events: 0 })
  })

  it('every JSON response matches the 200 schema its OpenAPI entry publishes', async () => {
    const doc = (await get('/openapi.json')).json
    const ajv = new Ajv2020({ strict: false })
    const range = `from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}`
    const calls: [method: string, path: string, query?: string][] = [
      ['get', '/activities', 'limit=5'],
      ['get', '/activities/count', 'action=invoice.pay'],
      ['get', '/trends', `${range}&interval=day&metrics=count,failures,error_rate,unique_actors,p50,p95,p99&group_by=action&top=2&forecast=2`],
      ['get', '/trends', `${range}&interval=hour&status=failure`],
      ['get', '/breakdown', `${range}&dimension=action`],
      ['get', '/anomalies', `${range}&interval=day`],
      ['get', '/health/score'],
      ['get', '/cache/stats'],
      ['get', '/export', `format=json&action=${ACTIONS[0]}`],
      ['get', '/audit', 'limit=5'],
      ['get', '/audit/verify', 'tenant='],
      ['post', '/cache/clear'],
    ]
    for (const [method, path, query] of calls) {
      const schema = doc.paths[`/api/v1${path}`][method].responses[200].content['application/json']?.schema
      expect(schema, `${method} ${path} documents its 200 body`).toBeDefined()
      const res = await fetch(`${c.url}/api/v1${path}${query ? `?${query}` : ''}`, { method: method.toUpperCase() })
      expect(res.status, `${method} ${path}`).toBe(200)
      const body = await res.json()
      const validate = ajv.compile(schema)
      expect(validate(body) ? [] : validate.errors, `${method} ${path}`).toEqual([])
      if (path === '/anomalies') expect(body.anomalies.length).toBeGreaterThan(0)
      if (path === '/audit' || path === '/export' || path === '/activities') expect((body.data ?? body).length).toBeGreaterThan(0)
    }
    // Every route that answers JSON was called above.
    const json = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, ops]) =>
      Object.entries(ops).flatMap(([method, op]) => (op.responses[200].content['application/json'] ? [`${method} ${path.slice('/api/v1'.length)}`] : [])),
    )
    expect([...new Set(calls.map(([m, p]) => `${m} ${p}`))].sort()).toEqual(json.sort())
  })

  it('publishes an OpenAPI document generated from the route schemas', async () => {
    const doc = (await get('/openapi.json')).json
    expect(doc.openapi).toBe('3.1.0')
    expect(Object.keys(doc.paths).sort()).toEqual(
      ['activities', 'activities/count', 'anomalies', 'audit', 'audit/verify', 'breakdown', 'cache/clear', 'cache/stats', 'export', 'health/score', 'trends'].map((p) => `/api/v1/${p}`),
    )
    const trends = doc.paths['/api/v1/trends'].get
    expect(trends['x-required-scope']).toBe('read')
    const interval = trends.parameters.find((p: any) => p.name === 'interval')
    expect(interval.schema.enum).toEqual(['minute', 'hour', 'day', 'week', 'month', 'auto'])
    expect(doc.paths['/api/v1/cache/clear'].post['x-required-scope']).toBe('admin')
    expect(doc.paths['/api/v1/audit/verify'].get['x-required-scope']).toBe('admin')
    expect(doc.paths['/api/v1/export'].get.responses[200].content).toHaveProperty(['text/csv; charset=utf-8'])
  })
})
