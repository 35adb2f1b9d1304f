/**
 * The Grafana dashboards, without a Grafana server: each panel's query is
 * expanded as Grafana and its datasource plugin would (test/helpers/
 * grafana.ts) and run against a real store loaded with the demo's traffic:
 * ClickHouse panels through the collector's ClickHouse HTTP interface,
 * PostgreSQL panels against the real audit_log (PGlite, and the server at
 * PG_URL), Prometheus panels' metrics against a real /metrics scrape. The
 * numbers are checked against /api/v1/trends and /api/v1/breakdown.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createClient, type ClickHouseClient } from '@clickhouse/client'
import type { Dashboard, Panel, VariableModel } from '@grafana/schema'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dashboardJson } from '../../dashboards/grafana/build.ts'
import { DASHBOARDS } from '../../dashboards/grafana/src/index.ts'
import { percentChange as percentChangeSql } from '../../dashboards/grafana/src/model.ts'
import { percentChange } from '../../api/trend-analysis.ts'
import { history, incidents } from '../../collector/demo/traffic.ts'
import { expandClickHouse, expandPostgres, type PanelRequest, type VariableState } from '../helpers/grafana.ts'
import { caughtUp, createScratchDatabase, eventually, PG_URL, post, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

const DAY = 86_400_000
const HOUR = 3_600_000
const dir = join(import.meta.dirname, '../../dashboards/grafana')
const panelsOf = (d: Dashboard) => (d.panels ?? []) as Panel[]
const kindOf = (p: Panel) => String((p.datasource as { type?: string }).type)
const sqlOf = (p: Panel, i = 0) => String((p.targets![i] as { rawSql?: string; expr?: string }).rawSql ?? (p.targets![i] as { expr: string }).expr)

describe('dashboard files', () => {
  it.each(Object.keys(DASHBOARDS))('%s is what npm run dashboards:build writes', (name) => {
    expect(readFileSync(join(dir, name), 'utf8'), 'run npm run dashboards:build').toBe(dashboardJson(name))
  })

  it.each(Object.entries(DASHBOARDS))('%s fits Grafana’s dashboard model and names no datasource uid', (_name, d) => {
    expect(d.uid).toMatch(/^actline-[a-z-]+$/)
    expect(d.schemaVersion).toBeGreaterThanOrEqual(39)
    const panels = panelsOf(d)
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length)
    for (const p of panels) {
      const g = p.gridPos!
      expect(g.x + g.w, p.title).toBeLessThanOrEqual(24)
      expect(p.targets?.length, p.title).toBeGreaterThan(0)
      for (const t of [p.datasource, ...p.targets!.map((t) => t.datasource)]) expect((t as { uid: string }).uid, p.title).toMatch(/^\$\{ds_\w+\}$/)
    }
    // Overlapping panels would stack in Grafana: every cell is one panel's.
    const cells = new Set<string>()
    for (const p of panels) for (let x = p.gridPos!.x; x < p.gridPos!.x + p.gridPos!.w; x++) for (let y = p.gridPos!.y; y < p.gridPos!.y + p.gridPos!.h; y++) {
      expect(cells.has(`${x},${y}`), `${p.title} overlaps`).toBe(false)
      cells.add(`${x},${y}`)
    }
    const vars = d.templating!.list!
    for (const v of vars.filter((v) => v.type === 'datasource')) expect(panels.some((p) => (p.datasource as { uid: string }).uid === `\${${v.name}}`)).toBe(true)
    expect(JSON.stringify(d)).not.toMatch(/"uid":\s*"actline-(clickhouse|postgres|prometheus)"(?![^{]*"type":\s*"datasource")/)
  })

  it('ClickHouse panels filter by every variable with $__conditionalAll and read time series from the rollups', () => {
    for (const d of [DASHBOARDS['activity-overview.json']!, DASHBOARDS['trends.json']!]) {
      const names = d.templating!.list!.filter((v) => v.type === 'query').map((v) => v.name)
      expect(names).toEqual(['tenant', 'service', 'source', 'action'])
      for (const p of panelsOf(d)) {
        const sql = sqlOf(p)
        for (const n of names) expect(sql, `${p.title}: ${n}`).toContain(`, $${n})`)
        const raw = /FROM \$\{database\}\.activities\b(?!_)/.test(sql)
        if (raw) expect([p.type, /LIMIT \d+\s*$/.test(sql)], `${p.title} reads raw rows`).toEqual(['table', true])
        else expect(sql, p.title).toMatch(/FROM \$\{database\}\.activities_by_(hour|day)\b/)
      }
    }
  })
})

describe.each(PG_URL ? (['embedded', 'server'] as const) : (['embedded'] as const))('dashboards on a store of demo traffic (PostgreSQL %s)', (mode) => {
  const tmp = tempDir()
  let c: RunningCollector
  let ch: ClickHouseClient
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined
  // A store of 45 days ending now, unaligned (as "now" is): 30- and 7-day ranges end part-way through an hour.
  const to = Math.floor(Date.now() / HOUR) * HOUR - HOUR + 23 * 60_000 + 17_000
  const ranges = { '30d': { from: to - 30 * DAY, to }, '7d': { from: to - 7 * DAY, to } }
  let sent = 0
  let options: Record<string, string[]> = {}

  beforeAll(async () => {
    scratch = mode === 'server' ? await createScratchDatabase() : undefined
    c = await startCollector(testConfig(tmp.path, { ...(scratch && { exporters: { postgres: { url: scratch.url } } }), api: { rate_limit: { enabled: false } } }))
    const from = to - 45 * DAY
    const rows = [...history(from, to, { perDay: 400, seed: 7, incidents: incidents(from, to, 7) })]
    sent = rows.length
    for (let i = 0; i < rows.length; i += 2000) {
      const r = await post(c.url, rows.slice(i, i + 2000).map((a) => JSON.stringify(a)).join('\n'), { 'content-type': 'application/x-ndjson' })
      expect(r.status).toBe(200)
    }
    ch = createClient({ url: c.clickhouseHttp!, request_timeout: 60_000 })
    await caughtUp(c.collector)
    await eventually('every row in ClickHouse', async () => Number((await (await ch.query({ query: 'SELECT count() AS n FROM actline.activities', format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n) === sent, 60_000)
    await eventually('the audit rows in PostgreSQL', async () => {
      const { rows } = await storesOf(c.collector).postgres.query('SELECT count(*)::int AS n FROM audit_log')
      return rows[0].n > sent / 2
    }, 60_000)
  }, 240_000)

  afterAll(async () => {
    await ch?.close()
    await c?.collector.shutdown()
    await scratch?.drop()
    tmp.remove()
  })

  const run = async (sql: string) => {
    const rs = await ch.query({ query: sql, format: 'JSON' })
    return (await rs.json<Record<string, unknown>>()) as { meta: { name: string; type: string }[]; data: Record<string, unknown>[] }
  }
  const api = async (path: string) => {
    const r = await fetch(`${c.url}/api/v1${path}`)
    expect(r.status, path).toBe(200)
    return (await r.json()) as any
  }

  /** Variable states: All for each, or one of them set to a value the store has. */
  function states(d: Dashboard): { label: string; vars: VariableState[]; filter: Record<string, string> }[] {
    const list = d.templating!.list! as VariableModel[]
    const base = (over: Record<string, string> = {}): VariableState[] =>
      list.map((v) => ({
        name: v.name,
        type: v.type,
        value: v.type === 'query' ? (over[v.name] ? [over[v.name]!] : ['$__all']) : String((v.current as { value: string }).value ?? ''),
        ...(v.type === 'query' && { options: options[v.name] ?? [] }),
      }))
    const queryVars = list.filter((v) => v.type === 'query').map((v) => v.name)
    return [{ label: 'All', vars: base(), filter: {} }, ...queryVars.map((n) => ({ label: `${n}=${options[n]![0]}`, vars: base({ [n]: options[n]![0]! }), filter: { [n]: options[n]![0]! } }))]
  }

  const request = (p: Panel, range: { from: number; to: number }, vars: VariableState[]): PanelRequest => ({
    range,
    maxDataPoints: p.maxDataPoints ?? 1000,
    ...(p.interval && { minInterval: p.interval }),
    variables: vars,
  })

  it("runs each variable's query: the store's values over the range", async () => {
    for (const d of [DASHBOARDS['activity-overview.json']!, DASHBOARDS['trends.json']!]) {
      for (const v of d.templating!.list!.filter((v) => v.type === 'query')) {
        const sql = expandClickHouse(String(v.query), { range: ranges['30d'], maxDataPoints: 1000, variables: [{ name: 'database', type: 'constant', value: 'actline' }] })
        const { data, meta } = await run(sql)
        expect(meta).toHaveLength(1)
        options[v.name] = data.map((r) => String(Object.values(r)[0]))
      }
    }
    expect(options.tenant).toEqual(['acme', 'globex', 'hooli', 'initech', 'umbrella'])
    expect(options.source).toEqual(['database', 'integration', 'scheduled', 'system', 'user'])
    expect(options.action!.length).toBeGreaterThan(15)
  })

  it('runs every ClickHouse panel for two ranges, All and one value of each variable, with the columns its panel needs', async () => {
    let queries = 0
    for (const d of [DASHBOARDS['activity-overview.json']!, DASHBOARDS['trends.json']!]) {
      for (const range of Object.values(ranges)) {
        for (const s of states(d)) {
          for (const p of panelsOf(d)) {
            const { meta, data } = await run(expandClickHouse(sqlOf(p), request(p, range, s.vars)))
            queries++
            const numeric = meta.filter((m) => /Int|Float|Decimal/.test(m.type))
            expect(numeric.length, `${d.title} / ${p.title} / ${s.label}: a number to show`).toBeGreaterThan(0)
            if (p.type === 'timeseries' || p.type === 'heatmap') {
              expect(meta[0]!.name, p.title).toBe('time')
              expect(meta[0]!.type, p.title).toMatch(/^DateTime/)
              const times = data.map((r) => Date.parse(`${String(r.time).replace(' ', 'T')}Z`))
              expect(times, `${p.title}: ascending`).toEqual([...times].sort((a, b) => a - b))
              expect(times.every((t) => t >= range.from - 31 * DAY && t <= range.to), p.title).toBe(true)
            }
            if (p.type === 'stat') expect(data, p.title).toHaveLength(1)
            if (s.label === 'All' && p.title !== 'Recent failures') expect(data.length, `${p.title} has rows`).toBeGreaterThan(0)
          }
        }
      }
    }
    expect(queries).toBeGreaterThan(100)
  }, 180_000)

  const overview = DASHBOARDS['activity-overview.json']!
  const panel = (d: Dashboard, title: string) => panelsOf(d).find((p) => p.title === title)!
  const qs = (o: Record<string, string | number>) => new URLSearchParams(Object.entries(o).map(([k, v]) => [k, String(v)])).toString()

  it('computes a change as /api/v1/trends does, to the last bit, so a tie is never rounded two ways', async () => {
    const { data } = await run(`SELECT c, p, ${percentChangeSql('c', 'p')} AS change FROM (SELECT number % 400 AS c, intDiv(number, 400) AS p FROM numbers(400 * 300))`)
    expect(data).toHaveLength(400 * 300)
    const differ = data.map((r) => [Number(r.c), Number(r.p), r.change]).filter(([c, p, change]) => change !== percentChange(c as number, p as number))
    expect(differ.slice(0, 5)).toEqual([])
  })

  it('shows the numbers /api/v1/trends and /api/v1/breakdown give for the same range and filter', async () => {
    for (const [name, range] of Object.entries(ranges)) {
      for (const s of states(overview)) {
        const filter = s.filter
        const trends = await api(`/trends?${qs({ from: range.from, to: range.to, interval: 'hour', metrics: 'count,failures,unique_actors,p95', ...filter })}`)
        const stat = async (title: string) => (await run(expandClickHouse(sqlOf(panel(overview, title)), request(panel(overview, title), range, s.vars)))).data[0]!
        const at = `${name} ${s.label}`
        const events = await stat('Events')
        expect(Number(events.value), at).toBe(trends.totals.count)
        expect(events.change === null ? null : Number(events.change), at).toBe(trends.change_percent.count)
        expect(Number((await stat('Failures')).value), at).toBe(trends.totals.failures)
        expect(Number((await stat('Unique actors')).value), at).toBe(trends.totals.unique_actors)
        expect(Number((await stat('p95 duration')).value), at).toBeCloseTo(trends.totals.p95, 0)

        // Volume by source, summed over sources per hour, is the hourly count.
        const vol = panel(overview, 'Volume by source')
        const { data } = await run(expandClickHouse(sqlOf(vol), request(vol, range, s.vars)))
        const perHour = new Map<number, number>()
        for (const r of data) {
          const t = Date.parse(`${String(r.time).replace(' ', 'T')}Z`)
          perHour.set(t, (perHour.get(t) ?? 0) + Number(r.events))
        }
        const expected = new Map<number, number>(trends.buckets.filter((b: any) => b.count > 0).map((b: any) => [Date.parse(b.time), b.count]))
        expect(perHour, at).toEqual(expected)

        for (const dim of ['category', 'severity', 'status', 'action'] as const) {
          // The panels count whole hours, the first one's too, as /trends does: so ask /breakdown for them.
          const b = await api(`/breakdown?${qs({ from: Math.floor(range.from / HOUR) * HOUR, to: range.to, dimension: dim, limit: 20, ...filter })}`)
          const p = dim === 'action' ? panel(overview, 'Top actions') : panel(overview, `By ${dim}`)
          const rows = (await run(expandClickHouse(sqlOf(p), request(p, range, s.vars)))).data
          const want = b.items.slice(0, rows.length).map((i: any) => [i.key, i.count])
          expect(rows.map((r) => [r[dim], Number(r.events)]), `${at} ${dim}`).toEqual(want)
        }
      }
    }
  }, 180_000)

  it('daily volume and its moving averages match /api/v1/trends by day', async () => {
    const trends = DASHBOARDS['trends.json']!
    const p = panel(trends, 'Daily volume')
    const range = ranges['30d']
    const [all] = states(trends)
    const { data } = await run(expandClickHouse(sqlOf(p), request(p, range, all!.vars)))
    const start = Math.floor(range.from / DAY) * DAY
    const api30 = await api(`/trends?${qs({ from: start - 29 * DAY, to: range.to, interval: 'day', metrics: 'count' })}`)
    const counts: number[] = api30.buckets.map((b: any) => b.count)
    expect(data.map((r) => Number(r.events))).toEqual(counts.slice(29))
    const avg = (xs: number[]) => Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10
    expect(data.map((r) => Number(r['7-day average']))).toEqual(counts.slice(29).map((_, i) => avg(counts.slice(i + 23, i + 30))))
    expect(data.map((r) => Number(r['30-day average']))).toEqual(counts.slice(29).map((_, i) => avg(counts.slice(i, i + 30))))
  })

  it('names only metrics a real /metrics scrape has', async () => {
    const scrape = await (await fetch(`${c.url}/metrics`)).text()
    const families = new Set([...scrape.matchAll(/^# TYPE (\S+) (\w+)/gm)].flatMap(([, name, type]) => (type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!])))
    const health = DASHBOARDS['collector-health.json']!
    const exprs = panelsOf(health).flatMap((p) => p.targets!.map((t) => String((t as { expr: string }).expr)))
    exprs.push(String((health.templating!.list!.find((v) => v.name === 'instance')!.query as { query: string }).query))
    const named = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:actline|process|nodejs)_\w+)/g)].map((m) => m[1]!)))
    expect(named.size).toBeGreaterThan(15)
    for (const m of named) expect(families.has(m), `${m} is in /metrics`).toBe(true)
  })

  it('runs every audit-trail panel against the real audit_log, filtered and not', async () => {
    const pool = storesOf(c.collector).postgres
    const d = DASHBOARDS['audit-trail.json']!
    const { rows: [some] } = await pool.query("SELECT actor_id, entity_type, entity_id, tenant_id FROM audit_log WHERE entity_id IS NOT NULL AND actor_id IS NOT NULL AND tenant_id IS NOT NULL ORDER BY occurred_at DESC LIMIT 1")
    const vars = (set: Record<string, string>): VariableState[] =>
      d.templating!.list!.map((v) => ({ name: v.name, type: v.type, value: v.type === 'datasource' ? 'actline-postgres' : (set[v.name] ?? '') }))
    const cases: { label: string; set: Record<string, string> }[] = [
      { label: 'no filter', set: {} },
      { label: 'actor', set: { actor: some.actor_id } },
      { label: 'entity', set: { entity_type: some.entity_type, entity_id: some.entity_id } },
      { label: 'tenant', set: { tenant: some.tenant_id } },
      // A quote in a filter is a value, never SQL.
      { label: 'hostile', set: { actor: "x' OR '1'='1" } },
    ]
    for (const range of Object.values(ranges)) {
      for (const k of cases) {
        for (const p of panelsOf(d)) {
          const sql = expandPostgres(sqlOf(p), request(p, range, vars(k.set)))
          const { rows, fields } = await pool.query(sql)
          expect(fields.length, `${p.title} ${k.label}`).toBeGreaterThan(0)
          if (p.title === 'Who changed what') {
            const { rows: [{ n }] } = await pool.query(
              `SELECT count(*)::int AS n FROM audit_log WHERE occurred_at BETWEEN $1 AND $2 AND ($3::text IS NULL OR actor_id = $3) AND ($4::text IS NULL OR entity_id = $4) AND ($5::text IS NULL OR tenant_id = $5) AND ($6::text IS NULL OR entity_type = $6)`,
              [new Date(range.from), new Date(range.to), k.set.actor ?? null, k.set.entity_id ?? null, k.set.tenant ?? null, k.set.entity_type ?? null],
            )
            expect(rows.length, `${p.title} ${k.label}`).toBe(Math.min(n, 500))
            if (k.label === 'actor') expect(rows.every((r) => r.actor_id === some.actor_id)).toBe(true)
            if (k.label === 'hostile') expect(rows).toHaveLength(0)
          }
          if (p.title === 'Entity history' && k.label === 'entity') {
            expect(rows.length).toBeGreaterThan(0)
            expect(rows.every((r) => r.entity_id === some.entity_id && r.entity_type === some.entity_type)).toBe(true)
          }
          if (p.title === 'Changes over time') expect(fields[0]!.name).toBe('time')
        }
      }
    }
  }, 120_000)
})
