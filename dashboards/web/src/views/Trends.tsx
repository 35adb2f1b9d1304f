/** Trends from the rollups (/api/v1/trends): a metric over time, its moving averages, the forecast with its band, the change against the previous period. */
import { useEffect, useMemo, useState } from 'react'
import { apiPath, getJson } from '../api.ts'
import { ErrorBox, FilterBar, filtersOf, Loading } from '../components.tsx'
import { localTime, num, percent } from '../format.ts'
import { setParams } from '../route.ts'
import { Chart, type ChartSeries } from './Chart.tsx'

export const METRICS = ['count', 'failures', 'error_rate', 'unique_actors', 'p50', 'p95', 'p99'] as const
const INTERVALS = ['auto', 'minute', 'hour', 'day', 'week', 'month'] as const
const GROUPS = ['', 'source', 'action', 'category', 'severity', 'status', 'service', 'tenant'] as const
const PALETTE = ['#1f6feb', '#d29922', '#2da44e', '#cf222e', '#8250df', '#bf3989', '#0a7ea4', '#9a6700', '#57606a', '#fb8f44', '#6e7781']

interface Bucket {
  time: string
  [metric: string]: number | string | null
}
interface TrendsResponse {
  interval: string
  buckets: Bucket[]
  groups?: { key: string; buckets: Bucket[] }[]
  totals: Record<string, number | null>
  previous_period: { from: string; to: string; totals: Record<string, number | null> }
  change_percent: Record<string, number | null>
  analysis: Record<string, { moving_average_7: (number | null)[]; moving_average_30: (number | null)[]; forecast: { time: string; value: number; lower: number; upper: number }[] }>
}

export function formatMetric(metric: string): (v: number) => string {
  if (metric === 'error_rate') return (v) => percent(v, 2)
  if (metric.startsWith('p')) return (v) => `${num(v, 1)} ms`
  return (v) => num(v)
}

export function Trends({ params }: { params: URLSearchParams }) {
  const metric = (params.get('metric') as (typeof METRICS)[number] | null) ?? 'count'
  const interval = params.get('interval') ?? 'auto'
  const groupBy = params.get('group_by') ?? ''
  const top = params.get('top') ?? '5'
  const filters = useMemo(() => ({ from: 'now-7d', ...filtersOf(params, ['from', 'to', 'source', 'action', 'category', 'severity', 'status', 'service', 'tenant']) }), [params])
  const path = apiPath('trends', { ...filters, metrics: metric, interval, forecast: groupBy ? 0 : 12, ...(groupBy && { group_by: groupBy, top }) })
  const [data, setData] = useState<TrendsResponse | null>(null)
  const [error, setError] = useState<unknown>(null)
  useEffect(() => {
    const ctl = new AbortController()
    setError(null)
    getJson<TrendsResponse>(path, ctl.signal).then(setData, (e) => (e as Error).name !== 'AbortError' && setError(e))
    return () => ctl.abort()
  }, [path])

  const chart = useMemo(() => {
    if (!data) return null
    const base = data.buckets.map((b) => Date.parse(b.time))
    const value = (b: Bucket) => (b[metric] === undefined ? null : (b[metric] as number | null))
    if (data.groups) {
      return { times: base, series: data.groups.map((g, i): ChartSeries => ({ label: g.key, values: g.buckets.map(value), color: PALETTE[i % PALETTE.length]! })) }
    }
    const a = data.analysis[metric]!
    const f = a.forecast
    const pad = (xs: (number | null)[]) => xs.concat(f.map(() => null))
    const tail = (pick: (p: (typeof f)[number]) => number) => [...data.buckets.map((_, i) => (i === data.buckets.length - 1 ? value(data.buckets[i]!) : null)), ...f.map(pick)]
    const series: ChartSeries[] = [
      { label: metric, values: pad(data.buckets.map(value)), color: PALETTE[0]!, bars: true },
      { label: '7-bucket average', values: pad(a.moving_average_7), color: PALETTE[1]! },
      { label: '30-bucket average', values: pad(a.moving_average_30), color: PALETTE[2]! },
    ]
    if (f.length) {
      series.push({ label: 'forecast', values: tail((p) => p.value), color: PALETTE[4]!, dash: [6, 4] })
      series.push({ label: 'forecast low', values: tail((p) => p.lower), color: `${PALETTE[4]}66`, dash: [2, 4] })
      series.push({ label: 'forecast high', values: tail((p) => p.upper), color: `${PALETTE[4]}66`, dash: [2, 4] })
    }
    return { times: base.concat(f.map((p) => Date.parse(p.time))), series, band: f.length ? ([4, 5] as [number, number]) : undefined }
  }, [data, metric])

  const change = data?.change_percent[metric]
  const fmt = formatMetric(metric)
  return (
    <section className="view trends">
      <FilterBar params={params} rowFilters={false} search={false} defaultPreset="7d" />
      <div className="toolbar">
        <label className="field">
          <span>Metric</span>
          <select name="metric" value={metric} onChange={(e) => setParams({ metric: e.target.value })}>
            {METRICS.map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Interval</span>
          <select name="interval" value={interval} onChange={(e) => setParams({ interval: e.target.value })}>
            {INTERVALS.map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Group by</span>
          <select name="group_by" value={groupBy} onChange={(e) => setParams({ group_by: e.target.value || undefined })}>
            {GROUPS.map((m) => (
              <option key={m} value={m}>
                {m || 'none'}
              </option>
            ))}
          </select>
        </label>
        {groupBy && (
          <label className="field">
            <span>Top</span>
            <select name="top" value={top} onChange={(e) => setParams({ top: e.target.value })}>
              {['3', '5', '10', '20'].map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </label>
        )}
      </div>
      {error ? <ErrorBox error={error} /> : null}
      {!data && !error ? <Loading /> : null}
      {data && (
        <>
          <div className="stats">
            <div className="stat" data-testid="trend-total">
              <span>{metric} over the range</span>
              <strong>{data.totals[metric] === null ? '–' : fmt(data.totals[metric]!)}</strong>
            </div>
            <div className="stat" data-testid="trend-previous">
              <span>previous period</span>
              <strong>{data.previous_period.totals[metric] === null ? '–' : fmt(data.previous_period.totals[metric]!)}</strong>
            </div>
            <div className={`stat ${change === null || change === undefined ? '' : change >= 0 ? 'up' : 'down'}`} data-testid="trend-change">
              <span>change</span>
              <strong>{change === null || change === undefined ? '–' : `${change >= 0 ? '+' : ''}${change.toFixed(1)}%`}</strong>
            </div>
            <div className="stat">
              <span>interval</span>
              <strong>{data.interval}</strong>
            </div>
          </div>
          {chart && <Chart times={chart.times} series={chart.series} band={chart.band} format={fmt} />}
          <details className="values">
            <summary>Values</summary>
            <table data-testid="trend-values">
              <thead>
                <tr>
                  <th>bucket</th>
                  {data.groups ? data.groups.map((g) => <th key={g.key}>{g.key}</th>) : <th>{metric}</th>}
                </tr>
              </thead>
              <tbody>
                {data.buckets.map((b, i) => (
                  <tr key={b.time} data-time={b.time}>
                    <td title={b.time}>{localTime(b.time)}</td>
                    {data.groups ? data.groups.map((g) => <td key={g.key}>{g.buckets[i]![metric] === null ? '–' : String(g.buckets[i]![metric])}</td>) : <td>{b[metric] === null ? '–' : String(b[metric])}</td>}
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        </>
      )}
    </section>
  )
}
