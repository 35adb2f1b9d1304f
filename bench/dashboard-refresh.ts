/**
 * A Grafana refresh of the ClickHouse dashboards, as Grafana would send it:
 * every panel's query and every variable's, expanded by test/helpers/
 * grafana.ts for a range, run over the ClickHouse HTTP interface. Grafana
 * sends a dashboard's panel queries at once, so a refresh runs them
 * concurrently; each panel's own time is measured too.
 */
import type { Panel, VariableModel } from '@grafana/schema'
import { DASHBOARDS } from '../dashboards/grafana/src/index.ts'
import { expandClickHouse, type VariableState } from '../test/helpers/grafana.ts'
import { median, quantile } from './query-scenarios.ts'

export interface PanelQuery {
  name: string
  sql: string
}

const CLICKHOUSE_DASHBOARDS = ['activity-overview.json', 'trends.json']

/** Every query one refresh of the ClickHouse dashboards sends, for `range` and the variables set in `set` (the rest All). */
export function refreshQueries(range: { from: number; to: number }, set: Record<string, string> = {}): PanelQuery[] {
  return CLICKHOUSE_DASHBOARDS.flatMap((file) => {
    const d = DASHBOARDS[file]!
    const list = d.templating!.list! as VariableModel[]
    const vars: VariableState[] = list.map((v) => ({
      name: v.name,
      type: v.type,
      value: v.type === 'query' ? [set[v.name] ?? '$__all'] : String((v.current as { value: string }).value),
      options: [],
    }))
    const base = { range, maxDataPoints: 1000, variables: vars }
    const variableQueries = list.filter((v) => v.type === 'query').map((v) => ({ name: `${d.title} / $${v.name}`, sql: expandClickHouse(String(v.query), base) }))
    const panels = (d.panels as Panel[]).map((p) => ({
      name: `${d.title} / ${p.title}`,
      sql: expandClickHouse(String((p.targets![0] as { rawSql: string }).rawSql), { ...base, maxDataPoints: p.maxDataPoints ?? 1000, ...(p.interval && { minInterval: p.interval }) }),
    }))
    return [...variableQueries, ...panels]
  })
}

/** One query over HTTP in Grafana's format (Native), read to the end; its milliseconds. */
export async function runQuery(url: string, sql: string): Promise<number> {
  const t = performance.now()
  const res = await fetch(`${url}/?default_format=Native`, { method: 'POST', body: sql })
  await res.arrayBuffer()
  if (res.status !== 200) throw new Error(`HTTP ${res.status} for ${sql.slice(0, 200)}`)
  return performance.now() - t
}

/** One refresh: every query at once; the wall time and each query's. */
export async function refresh(url: string, queries: readonly PanelQuery[]): Promise<{ wallMs: number; each: number[] }> {
  const t = performance.now()
  const each = await Promise.all(queries.map((q) => runQuery(url, q.sql)))
  return { wallMs: performance.now() - t, each }
}


/**
 * `runs` refreshes one query at a time (each panel's own time, and their
 * sum) and `runs` concurrent ones (the wall time Grafana waits), after a
 * warm-up; a markdown table per panel and a summary line.
 */
export async function measureRefresh(url: string, queries: readonly PanelQuery[], runs: number, log: (m: string) => void): Promise<{ table: string; sumMs: number; wallMs: number; slowest: { name: string; ms: number } }> {
  for (let i = 0; i < 2; i++) await refresh(url, queries)
  const each = queries.map(() => [] as number[])
  const sums: number[] = []
  const walls: number[] = []
  for (let r = 0; r < runs; r++) {
    let sum = 0
    for (const [i, q] of queries.entries()) {
      const ms = await runQuery(url, q.sql)
      each[i]!.push(ms)
      sum += ms
    }
    sums.push(sum)
    walls.push((await refresh(url, queries)).wallMs)
    if ((r + 1) % 5 === 0) log(`  refresh ${r + 1}/${runs}: one at a time ${sum.toFixed(0)} ms, concurrent ${walls.at(-1)!.toFixed(0)} ms`)
  }
  const rows = queries.map((q, i) => ({ name: q.name, p50: median(each[i]!), p95: quantile([...each[i]!].sort((a, b) => a - b), 0.95) }))
  const slowest = rows.reduce((a, b) => (b.p50 > a.p50 ? b : a))
  return {
    table: ['| query | p50 ms | p95 ms |', '| --- | ---: | ---: |', ...rows.map((r) => `| ${r.name} | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} |`)].join('\n'),
    sumMs: median(sums),
    wallMs: median(walls),
    slowest: { name: slowest.name, ms: slowest.p50 },
  }
}
