/**
 * /metrics as Prometheus scrapes it, from a real collector: well-formed
 * exposition text, conventional names, histograms whose buckets add up,
 * request and export latency that count what happened, and every metric
 * documented in docs/metrics.md.
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventually, post, startCollector, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

interface Family {
  type: string
  help: string
  samples: { name: string; labels: Record<string, string>; value: number }[]
}

/** The text format (https://prometheus.io/docs/instrumenting/exposition_formats/), strictly: a line that is none of these fails. */
function parse(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const familyOf = (sample: string) => [...families.keys()].find((f) => sample === f || (families.get(f)!.type === 'histogram' && /^(.+)_(bucket|sum|count)$/.exec(sample)?.[1] === f))
  for (const line of text.trimEnd().split('\n')) {
    let m: RegExpExecArray | null
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line))) families.set(m[1]!, { type: '', help: m[2]!, samples: [] })
    else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line))) families.get(m[1]!)!.type = m[2]!
    else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",?)*)\})? (-?[0-9.e+-]+|\+Inf|NaN)$/.exec(line))) {
      const family = familyOf(m[1]!)
      if (!family) throw new Error(`sample without HELP/TYPE: ${line}`)
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]))
      families.get(family)!.samples.push({ name: m[1]!, labels, value: Number(m[3]) })
    } else throw new Error(`not exposition format: ${JSON.stringify(line)}`)
  }
  return families
}

describe('/metrics', () => {
  const dir = tempDir()
  let c: RunningCollector
  let families: Map<string, Family>
  const POSTS = 12

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path))
    for (let i = 0; i < POSTS; i++) expect((await post(c.url, JSON.stringify({ action: 'metrics.test', source: 'user' }))).status).toBe(200)
    expect((await fetch(`${c.url}/no/such/route`)).status).toBe(404)
    await eventually('exported to both stores', async () => Object.values(c.collector.pending()).every((n) => n === 0))
    families = parse(await (await fetch(`${c.url}/metrics`)).text())
  }, 120_000)

  afterAll(async () => {
    await c?.collector.shutdown()
    dir.remove()
  })

  it('names every metric by Prometheus convention: counters _total, units as suffixes', () => {
    for (const [name, f] of families) {
      expect(f.type, name).not.toBe('')
      if (f.type === 'counter') expect(name).toMatch(/_total$/)
      else expect(name).not.toMatch(/_total$/)
      if (/duration|delay|_time/.test(name)) expect(name).toMatch(/_seconds(_total)?$/)
      // Base units only: seconds and bytes, never milliseconds or mebibytes.
      expect(name).not.toMatch(/_(ms|millis|milliseconds|mib|mb|kb)(_|$)/)
    }
  })

  it('has histograms whose buckets are cumulative and end in +Inf = count', () => {
    const histograms = [...families.values()].filter((f) => f.type === 'histogram')
    expect(histograms.length).toBeGreaterThanOrEqual(2)
    for (const f of histograms) {
      const series = new Map<string, { le: string; value: number }[]>()
      for (const s of f.samples.filter((s) => s.name.endsWith('_bucket'))) {
        const { le, ...rest } = s.labels
        const key = JSON.stringify(rest)
        series.set(key, [...(series.get(key) ?? []), { le: le!, value: s.value }])
      }
      for (const [key, buckets] of series) {
        expect(buckets.at(-1)!.le).toBe('+Inf')
        for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value)
        const count = f.samples.find((s) => s.name.endsWith('_count') && JSON.stringify(s.labels) === key)!
        expect(count.value).toBe(buckets.at(-1)!.value)
      }
    }
  })

  it('counts each request under its route pattern and status class, the unmatched ones as one series', () => {
    const f = families.get('actline_http_request_duration_seconds')!
    const count = (labels: Record<string, string>) => f.samples.find((s) => s.name.endsWith('_count') && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
    expect(count({ method: 'POST', route: '/v1/activities', status: '2xx' })).toBe(POSTS)
    expect(count({ method: 'GET', route: 'unmatched', status: '4xx' })).toBe(1)
    expect(f.samples.some((s) => s.labels.route?.includes('no/such'))).toBe(false)
  })

  it("counts the log's records, one per accepted request, and the syncs that made them durable", () => {
    const value = (name: string) => families.get(name)!.samples[0]!.value
    expect(value('actline_wal_records_total')).toBe(POSTS)
    // One request at a time: nothing to share a sync with.
    expect(value('actline_wal_syncs_total')).toBe(POSTS)
  })

  it('has one export duration per export call, per exporter', () => {
    const calls = families.get('actline_exporter_export_calls_total')!.samples
    const durations = families.get('actline_exporter_export_duration_seconds')!.samples.filter((s) => s.name.endsWith('_count'))
    expect(durations.map((s) => s.labels.exporter).sort()).toEqual(['clickhouse', 'postgres'])
    for (const d of durations) {
      expect(d.value).toBeGreaterThan(0)
      expect(d.value).toBe(calls.find((s) => s.labels.exporter === d.labels.exporter)!.value)
    }
  })

  it('reports the process: CPU time, start time, resident memory', () => {
    const value = (name: string) => families.get(name)!.samples[0]!.value
    expect(value('process_cpu_seconds_total')).toBeGreaterThan(0)
    expect(value('process_start_time_seconds')).toBeLessThanOrEqual(Date.now() / 1000)
    expect(value('process_start_time_seconds')).toBeGreaterThan(Date.now() / 1000 - 3600)
    expect(value('process_resident_memory_bytes')).toBeGreaterThan(50 * 2 ** 20)
  })

  it('documents every metric in docs/metrics.md', () => {
    const doc = readFileSync('docs/metrics.md', 'utf8')
    expect([...families.keys()].filter((name) => !doc.includes(`\`${name}\``))).toEqual([])
  })
})
