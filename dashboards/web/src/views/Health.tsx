/** Breakdowns, anomalies, the health score and the collector's own state (/readyz, /metrics). */
import { useEffect, useMemo, useState } from 'react'
import { apiPath, getJson } from '../api.ts'
import { ErrorBox, FilterBar, filtersOf, Loading } from '../components.tsx'
import { bytes, localTime, num, percent } from '../format.ts'
import { hrefFor, setParams } from '../route.ts'

const DIMENSIONS = ['source', 'status', 'category', 'severity', 'action', 'service', 'tenant'] as const

interface Breakdown {
  totals: { count?: number }
  items: { key: string; count?: number; failures?: number; error_rate?: number; unique_actors?: number; share: number }[]
}
interface Anomalies {
  interval: string
  anomalies: { time: string; value: number; score: number; direction: string }[]
}
interface HealthScore {
  score: number
  status: string
  events: number
  parts: Record<string, { value: number | null; points: number }>
}

function useJson<T>(path: string, refreshMs = 0): { data: T | null; error: unknown } {
  const [state, setState] = useState<{ data: T | null; error: unknown }>({ data: null, error: null })
  useEffect(() => {
    const ctl = new AbortController()
    let timer: number | undefined
    const load = () =>
      getJson<T>(path, ctl.signal).then(
        (data) => setState({ data, error: null }),
        (error) => (error as Error).name !== 'AbortError' && setState((s) => ({ ...s, error })),
      ).finally(() => {
        if (refreshMs && !ctl.signal.aborted) timer = window.setTimeout(load, refreshMs)
      })
    void load()
    return () => {
      ctl.abort()
      clearTimeout(timer)
    }
  }, [path, refreshMs])
  return state
}

/** The collector's counters, scraped twice to turn totals into rates. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

function CollectorState() {
  const [state, setState] = useState<{ ready: Record<string, unknown> | null; metrics: Map<string, number>; rate: number | null; error: unknown }>({ ready: null, metrics: new Map(), rate: null, error: null })
  useEffect(() => {
    let prev: { t: number; accepted: number } | null = null
    let timer: number | undefined
    let stopped = false
    const load = async () => {
      try {
        const readyRes = await fetch('/readyz')
        const ready = (await readyRes.json()) as Record<string, unknown>
        // `actline api` serves no /metrics (the collector does): its state is then /readyz alone.
        const metricsRes = await fetch('/metrics')
        const metrics = metricsRes.ok ? parseMetrics(await metricsRes.text()) : new Map<string, number>()
        const accepted = metrics.get('actline_receiver_activities_total{outcome="accepted"}') ?? 0
        const now = Date.now()
        const rate = prev ? ((accepted - prev.accepted) * 1000) / (now - prev.t) : null
        prev = { t: now, accepted }
        if (!stopped) setState((s) => ({ ready, metrics, rate: rate ?? s.rate, error: null }))
      } catch (error) {
        if (!stopped) setState((s) => ({ ...s, error }))
      }
      if (!stopped) timer = window.setTimeout(load, 5000)
    }
    void load()
    return () => {
      stopped = true
      clearTimeout(timer)
    }
  }, [])
  const queues = [...state.metrics].filter(([k]) => k.startsWith('actline_exporter_queue_activities{'))
  const stores = (state.ready?.stores ?? {}) as Record<string, string>
  return (
    <div className="card" data-testid="collector-state">
      <h3>Collector</h3>
      {state.error ? <ErrorBox error={state.error} /> : null}
      {!state.ready && !state.error ? <Loading /> : null}
      {state.ready && (
        <dl className="kv">
          <dt>status</dt>
          <dd className={String(state.ready.status)}>{String(state.ready.status)}</dd>
          {Object.entries(stores).map(([name, s]) => (
            <div key={name}>
              <dt>store {name}</dt>
              <dd className={s === 'ok' ? 'ready' : 'not_ready'}>{s}</dd>
            </div>
          ))}
          {state.metrics.size === 0 && (
            <>
              <dt>metrics</dt>
              <dd className="muted">not served here (actline api); the collector's /metrics has them</dd>
            </>
          )}
          <dt>intake</dt>
          <dd>{state.metrics.size === 0 ? '–' : state.rate === null ? 'measuring…' : `${num(state.rate, 1)} activities/s`}</dd>
          {queues.map(([k, v]) => (
            <div key={k}>
              <dt>queue {/exporter="([^"]+)"/.exec(k)?.[1]}</dt>
              <dd>{num(v)} activities</dd>
            </div>
          ))}
          <dt>write-ahead log</dt>
          <dd>{bytes(state.metrics.get('actline_wal_retained_bytes') ?? 0)} retained</dd>
          <dt>memory</dt>
          <dd>{bytes(state.metrics.get('process_resident_memory_bytes') ?? 0)} resident</dd>
        </dl>
      )}
    </div>
  )
}

export function Health({ params }: { params: URLSearchParams }) {
  const dimension = (params.get('dimension') as (typeof DIMENSIONS)[number] | null) ?? 'source'
  const anomalyMetric = params.get('anomaly_metric') ?? 'error_rate'
  const filters = useMemo(() => ({ from: 'now-24h', ...filtersOf(params, ['from', 'to', 'source', 'action', 'category', 'severity', 'status', 'service', 'tenant']) }), [params])
  const breakdown = useJson<Breakdown>(apiPath('breakdown', { ...filters, dimension, limit: 20 }))
  const anomalies = useJson<Anomalies>(apiPath('anomalies', { ...filters, metric: anomalyMetric }))
  const score = useJson<HealthScore>('/api/v1/health/score', 30_000)
  const bucketMs: Record<string, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000, week: 7 * 86_400_000 }
  return (
    <section className="view health">
      <FilterBar params={params} rowFilters={false} search={false} />
      <div className="grid">
        <div className="card" data-testid="health-score">
          <h3>Health score</h3>
          {score.error ? <ErrorBox error={score.error} /> : null}
          {score.data && (
            <>
              <p className={`score ${score.data.status}`}>
                <strong>{score.data.score}</strong> {score.data.status}
              </p>
              <dl className="kv">
                {Object.entries(score.data.parts).map(([k, p]) => (
                  <div key={k}>
                    <dt>{k}</dt>
                    <dd>
                      {p.value === null ? '–' : k === 'errors' ? percent(p.value, 2) : `${num(p.value, 1)} ms`} · {num(p.points, 1)} points
                    </dd>
                  </div>
                ))}
              </dl>
              <p className="muted">over {num(score.data.events)} activities of the last window</p>
            </>
          )}
        </div>
        <CollectorState />
        <div className="card wide" data-testid="breakdown">
          <h3>
            Breakdown by{' '}
            <select name="dimension" value={dimension} onChange={(e) => setParams({ dimension: e.target.value })}>
              {DIMENSIONS.map((d) => (
                <option key={d}>{d}</option>
              ))}
            </select>
          </h3>
          {breakdown.error ? <ErrorBox error={breakdown.error} /> : null}
          {!breakdown.data && !breakdown.error ? <Loading /> : null}
          {breakdown.data && (
            <table className="bars">
              <thead>
                <tr>
                  <th>{dimension}</th>
                  <th>count</th>
                  <th>share</th>
                  <th>failures</th>
                  <th>error rate</th>
                  <th>actors</th>
                </tr>
              </thead>
              <tbody>
                {breakdown.data.items.map((i) => (
                  <tr key={i.key} data-key={i.key}>
                    <td>
                      <a href={hrefFor('activities', { ...filters, [dimension]: i.key })}>{i.key || '(none)'}</a>
                    </td>
                    <td className="num">{num(i.count)}</td>
                    <td className="share">
                      <span className="bar" style={{ width: `${Math.round(i.share * 100)}%` }} /> {percent(i.share)}
                    </td>
                    <td className="num">{num(i.failures)}</td>
                    <td className="num">{percent(i.error_rate, 2)}</td>
                    <td className="num">{num(i.unique_actors)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
        <div className="card wide" data-testid="anomalies">
          <h3>
            Anomalies in{' '}
            <select name="anomaly_metric" value={anomalyMetric} onChange={(e) => setParams({ anomaly_metric: e.target.value })}>
              {['count', 'failures', 'error_rate', 'unique_actors', 'p95'].map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </h3>
          {anomalies.error ? <ErrorBox error={anomalies.error} /> : null}
          {anomalies.data && anomalies.data.anomalies.length === 0 ? <p className="muted">None: every {anomalies.data.interval} is within the usual range.</p> : null}
          {anomalies.data && anomalies.data.anomalies.length > 0 && (
            <ul className="anomalies">
              {anomalies.data.anomalies.map((a) => {
                const end = new Date(Date.parse(a.time) + (bucketMs[anomalies.data!.interval] ?? 3_600_000)).toISOString()
                return (
                  <li key={a.time}>
                    <a href={hrefFor('activities', { ...filters, from: a.time, to: end })} title={a.time}>
                      {localTime(a.time)}
                    </a>{' '}
                    {anomalyMetric === 'error_rate' ? percent(a.value, 2) : num(a.value, 1)} · {a.direction} usual · score {num(a.score, 1)}
                  </li>
                )
              })}
            </ul>
          )}
        </div>
      </div>
    </section>
  )
}
