/**
 * npm run bench:query — the query API over a year of activity.
 *
 * Loads 10 million synthetic activities spread over 365 days into the
 * embedded ClickHouse (generated inside the engine; the rollups' views fire
 * as for ingested rows), lets the rollups merge, then serves them from
 * `actline api` as a real process and times, from another process over
 * keep-alive HTTP:
 *   - /trends: 365 days by day (default metrics, and every metric), 30 days
 *     by hour, 365 days by day grouped by action (top 10);
 *     each uncached (the cache cleared before every request, untimed) and cached;
 *   - the first page of /activities with filters.
 * Reports p50/p95/p99 per scenario.
 *
 * Then Grafana's view of the same store: one refresh of every panel and
 * variable of the two ClickHouse dashboards over the last 30 days, through
 * the ClickHouse HTTP interface of `actline api` (bench/dashboard-refresh.ts),
 * one query at a time and all at once. And what a refresh costs ingest: a
 * collector on a copy of the store takes bench:ingest's 10,000 events/s
 * phase with no dashboard, one refresh every 5 s (Grafana's shortest
 * auto-refresh) and refreshes back to back, interleaved.
 *
 * First, what the rollups cost ingest: the embedded exporter's insert time
 * per row with every view, the three grains' only, the minute one only, and none,
 * 5,000-row batches, the variants interleaved so drift hits them alike.
 *
 * Options (env): BENCH_ROWS (default 10000000), BENCH_RUNS (per scenario,
 * default 60), BENCH_DIR (reuse a loaded data directory), BENCH_REFRESHES
 * (default 20), BENCH_SECONDS (per ingest phase, default 20), BENCH_SKIP_INSERT.
 */
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'node:http'
import { ClickHouseExporterConfig } from '../exporters/clickhouse/config.ts'
import { createClickHouseExporter } from '../exporters/clickhouse/exporter.ts'
import { ROLLUPS } from '../schemas/clickhouse-schema.ts'
import { parseActivity, type Activity } from '../schemas/activity.ts'
import { tempDir } from '../test/helpers/stores.ts'
import { startNodeProcess, writeConfig } from '../test/helpers/process.ts'
import { syntheticInsertSql } from '../test/helpers/synthetic.ts'
import { median, quantile, queryScenarios } from './query-scenarios.ts'
import { closedPort } from '../test/helpers/ports.ts'
import { measureRefresh, refresh, refreshQueries } from './dashboard-refresh.ts'
import { metrics, runGenerator, startCollector, timeToStored } from './collector-process.ts'

const ROWS = Number(process.env.BENCH_ROWS ?? 10_000_000)
const RUNS = Number(process.env.BENCH_RUNS ?? 60)
const DAY = 86_400_000
const CHUNK = 1_000_000
const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} }

function log(msg: string) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`)
}

const dir = process.env.BENCH_DIR ?? join(tmpdir(), `actline-bench-query-${ROWS}`)
// Whole days: the data ends at the last midnight, so the year is a closed range.
const end = Math.floor(Date.now() / DAY) * DAY

async function load(): Promise<void> {
  const marker = join(dir, 'loaded')
  if (existsSync(marker)) {
    log(`reusing ${dir}`)
    return
  }
  mkdirSync(dir, { recursive: true })
  const ch = createClickHouseExporter({ ...ClickHouseExporterConfig.parse({}), path: join(dir, 'clickhouse') }, quiet)
  await ch.start()
  const client = ch.client()
  const started = Date.now()
  for (let offset = 0; offset < ROWS; offset += CHUNK) {
    const rows = Math.min(CHUNK, ROWS - offset)
    await client.command({ query: syntheticInsertSql({ database: 'actline', rows, offset, endMs: end, days: 365 }) })
    log(`loaded ${(offset + rows).toLocaleString()} / ${ROWS.toLocaleString()} rows (${((Date.now() - started) / 1000).toFixed(0)} s)`)
  }
  // What a store settles to once background merges catch up; a bench over
  // freshly written parts would time the merge backlog instead.
  for (const table of ['activities', ...ROLLUPS.map((r) => r.table)]) {
    log(`merging ${table}`)
    await client.command({ query: `OPTIMIZE TABLE actline.${table} FINAL`, clickhouse_settings: { optimize_throw_if_noop: 0 } })
  }
  const sizes = await (
    await client.query({
      query: `SELECT table, sum(rows) AS rows, formatReadableSize(sum(bytes_on_disk)) AS size FROM system.parts WHERE database = 'actline' AND active GROUP BY table ORDER BY table`,
      format: 'JSONEachRow',
    })
  ).json<{ table: string; rows: string; size: string }>()
  for (const s of sizes) log(`  ${s.table}: ${Number(s.rows).toLocaleString()} rows, ${s.size}`)
  await ch.shutdown()
  writeFileSync(marker, new Date().toISOString())
}

function batch(n: number, round: number): Activity[] {
  return Array.from({ length: n }, (_, i) => {
    const r = parseActivity({
      source: 'user',
      action: `action.${i % 30}`,
      tenant_id: `t${i % 10}`,
      service: `s${(i >> 3) % 5}`,
      actor_id: `u${(i * 7 + round) % 5000}`,
      duration_ms: (i * 13) % 1000,
      status: i % 33 ? 'success' : 'failure',
      details: { i, round },
    })
    if (!r.ok) throw new Error('bad fixture')
    return r.activity
  })
}

/** Median microseconds per inserted row with the first `views` rollup views kept. */
async function insertCost(views: number, batches: number): Promise<number> {
  const d = tempDir('actline-bench-insert-')
  const ch = createClickHouseExporter({ ...ClickHouseExporterConfig.parse({}), path: d.path }, quiet)
  await ch.start()
  for (const r of ROLLUPS.slice(views)) await ch.client().command({ query: `DROP VIEW actline.${r.table}_mv` })
  const times: number[] = []
  for (let k = 0; k < batches; k++) {
    const rows = batch(5_000, k)
    const t = performance.now()
    const result = await ch.export(rows)
    if (result.status !== 'success') throw result.error
    times.push(((performance.now() - t) * 1000) / rows.length)
  }
  await ch.shutdown()
  d.remove()
  times.sort((a, b) => a - b)
  return times[times.length >> 1]!
}

async function insertCosts(): Promise<string> {
  const variants = [
    { name: 'no rollup views', views: 0 },
    { name: 'minute view only', views: 1 },
    { name: 'minute, hour and day views (cascaded)', views: 3 },
    { name: 'those three and the day total (every rollup)', views: ROLLUPS.length },
  ]
  const results = new Map<string, number[]>(variants.map((v) => [v.name, []]))
  const rounds = Number(process.env.BENCH_INSERT_ROUNDS ?? 4)
  for (let round = 1; round <= rounds; round++) {
    for (const v of variants) results.get(v.name)!.push(await insertCost(v.views, 20))
    log(`insert cost round ${round}/${rounds}: ${variants.map((v) => `${v.name} ${results.get(v.name)!.at(-1)!.toFixed(1)} us/row`).join(', ')}`)
  }
  const base = median(results.get(variants[0]!.name)!)
  return [
    `| insert, 5,000-row batches (median of ${rounds} runs x 20 batches) | us/row | vs no views |`,
    '| --- | ---: | ---: |',
    ...variants.map((v) => {
      const m = median(results.get(v.name)!)
      return `| ${v.name} | ${m.toFixed(1)} | ${(m / base).toFixed(2)}x |`
    }),
  ].join('\n')
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 })

function call(url: string, method = 'GET'): Promise<{ status: number; ms: number; cache: string | undefined; bytes: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const req = request(url, { method, agent }, (res) => {
      let bytes = 0
      res.on('data', (c: Buffer) => (bytes += c.length))
      res.on('end', () =>
        resolve({ status: res.statusCode!, ms: Number(process.hrtime.bigint() - t0) / 1e6, cache: res.headers['x-cache'] as string | undefined, bytes }),
      )
    })
    req.on('error', reject)
    req.end()
  })
}

async function main(): Promise<void> {
  log(`machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`)
  const insertTable = process.env.BENCH_SKIP_INSERT ? '' : await insertCosts()
  await load()
  const chPort = await closedPort()
  const config = writeConfig(
    dir,
    `data_dir: ${dir}\nserver: { port: 0, log_level: warn, clickhouse_http: { port: ${chPort} } }\nexporters: { postgres: { enabled: false } }\napi: { rate_limit: { enabled: false } }\n`,
  )
  const api = await startNodeProcess([join(import.meta.dirname, '../bin/actline.js'), 'api', '--config', config], {}, 'actline api')
  const base = `${api.url}/api/v1`
  const scenarios = queryScenarios(end).flatMap((s) =>
    s.cacheable
      ? [
          { name: `${s.name}, uncached`, path: s.path, cached: false },
          { name: `${s.name}, cached`, path: s.path, cached: true },
        ]
      : [{ name: s.name, path: s.path, cached: false }],
  )
  const results: { name: string; p50: number; p95: number; p99: number; bytes: number }[] = []
  for (const s of scenarios) {
    // Warm-up: the first run loads marks and parts into the engine's caches.
    for (let i = 0; i < 3; i++) await call(`${base}${s.path}`)
    const times: number[] = []
    let bytes = 0
    for (let i = 0; i < RUNS; i++) {
      if (!s.cached) await call(`${base}/cache/clear`, 'POST')
      const r = await call(`${base}${s.path}`)
      if (r.status !== 200) throw new Error(`${s.path}: HTTP ${r.status}`)
      if (s.cached && r.cache !== 'hit') throw new Error(`${s.path}: expected a cache hit, got ${r.cache}`)
      if (!s.cached && r.cache === 'hit') throw new Error(`${s.path}: expected a miss`)
      times.push(r.ms)
      bytes = r.bytes
    }
    times.sort((a, b) => a - b)
    const row = { name: s.name, p50: quantile(times, 0.5), p95: quantile(times, 0.95), p99: quantile(times, 0.99), bytes }
    results.push(row)
    log(`${s.name}: p50 ${row.p50.toFixed(2)} ms, p95 ${row.p95.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms (${(bytes / 1024).toFixed(0)} KiB)`)
  }
  const dashboards = await dashboardRefresh(`http://127.0.0.1:${chPort}`)
  api.child.kill('SIGTERM')
  await api.exited
  const interference = process.env.BENCH_SKIP_INGEST ? '' : await ingestDuringRefresh()
  if (insertTable) console.log(`\n${insertTable}`)
  console.log(dashboards)
  if (interference) console.log(interference)
  console.log(`\n| scenario (${RUNS} runs each) | p50 ms | p95 ms | p99 ms | response |\n| --- | ---: | ---: | ---: | ---: |`)
  for (const r of results) console.log(`| ${r.name} | ${r.p50.toFixed(2)} | ${r.p95.toFixed(2)} | ${r.p99.toFixed(2)} | ${(r.bytes / 1024).toFixed(0)} KiB |`)
}

const REFRESHES = Number(process.env.BENCH_REFRESHES ?? 20)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
/** The last 30 days up to now, as a dashboard opens with "Last 30 days" (the data ends at the last midnight). */
const last30 = () => ({ from: Date.now() - 30 * DAY, to: Date.now() })

async function dashboardRefresh(url: string): Promise<string> {
  const out: string[] = []
  for (const [label, set] of [['All', {}], ['tenant t3', { tenant: 't3' }]] as const) {
    const queries = refreshQueries(last30(), set)
    log(`dashboards, ${label}: ${queries.length} queries a refresh, ${REFRESHES} refreshes`)
    const r = await measureRefresh(url, queries, REFRESHES, log)
    log(`  one at a time ${r.sumMs.toFixed(0)} ms, concurrent ${r.wallMs.toFixed(0)} ms, slowest ${r.slowest.name} ${r.slowest.ms.toFixed(1)} ms`)
    out.push(
      `\nDashboards refresh, last 30 days, ${label} (${queries.length} queries; medians of ${REFRESHES} refreshes): one at a time ${r.sumMs.toFixed(0)} ms in total, all at once ${r.wallMs.toFixed(0)} ms; slowest: ${r.slowest.name} ${r.slowest.ms.toFixed(1)} ms\n\n${r.table}`,
    )
  }
  return out.join('\n')
}

/** bench:ingest's 10,000 events/s phase on a collector serving a copy of the store, with and without dashboards refreshing it. */
async function ingestDuringRefresh(): Promise<string> {
  const copy = tempDir('actline-bench-refresh-')
  log(`copying the store to ${copy.path} for the ingest phases...`)
  cpSync(join(dir, 'clickhouse'), join(copy.path, 'clickhouse'), { recursive: true })
  const chPort = await closedPort()
  const configFile = join(copy.path, 'collector.yaml')
  writeFileSync(configFile, `data_dir: ${copy.path}\nserver: { port: 0, log_level: warn, clickhouse_http: { port: ${chPort} } }\n`)
  const collector = await startCollector(configFile)
  const ch = `http://127.0.0.1:${chPort}`
  await runGenerator({ url: collector.url, mode: 'rate', rate: 10, concurrency: 64, durationMs: 3000, batchSize: 500 })
  await timeToStored(collector.url)
  for (let i = 0; i < 2; i++) await refresh(ch, refreshQueries(last30()))
  const modes = ['no dashboard', 'refresh every 5 s', 'refreshes back to back'] as const
  const results = new Map<string, { accepted: number[]; p99: number[]; refreshMs: number[]; refreshes: number }>(modes.map((m) => [m, { accepted: [], p99: [], refreshMs: [], refreshes: 0 }]))
  for (let round = 1; round <= 2; round++) {
    for (const mode of modes) {
      const r = results.get(mode)!
      const stop = { done: false }
      const refresher = (async () => {
        while (!stop.done && mode !== 'no dashboard') {
          const t = performance.now()
          r.refreshMs.push((await refresh(ch, refreshQueries(last30()))).wallMs)
          r.refreshes++
          if (mode === 'refresh every 5 s') await new Promise((res) => setTimeout(res, Math.max(0, 5000 - (performance.now() - t))))
        }
      })()
      const load = await runGenerator({ url: collector.url, mode: 'rate', rate: 20, concurrency: 64, durationMs: SECONDS * 1000, batchSize: 500 })
      stop.done = true
      await refresher
      await timeToStored(collector.url)
      r.accepted.push(load.accepted / (load.elapsedMs / 1000))
      r.p99.push(load.latencyMs.p99)
      log(`ingest round ${round}, ${mode}: ${Math.round(r.accepted.at(-1)!)} accepted events/s, p99 ${load.latencyMs.p99} ms${r.refreshes ? `, ${r.refreshes} refreshes so far` : ''}`)
    }
  }
  const final = await metrics(collector.url)
  collector.child.kill('SIGTERM')
  await new Promise((res) => collector.child.once('exit', res))
  copy.remove()
  const base = median(results.get('no dashboard')!.accepted)
  return [
    `\nIngest at 10,000 events/s offered (20 x 500-event requests/s, ${SECONDS} s a phase, 2 interleaved rounds) on a collector serving the 10M-row store; ${final.accepted.toLocaleString()} accepted in all`,
    '',
    '| dashboards | accepted events/s (median) | vs none | request p99 ms | refresh wall ms (median) | refreshes |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...modes.map((m) => {
      const r = results.get(m)!
      return `| ${m} | ${Math.round(median(r.accepted)).toLocaleString()} | ${(median(r.accepted) / base).toFixed(3)} | ${median(r.p99)} | ${r.refreshMs.length ? median(r.refreshMs).toFixed(0) : '-'} | ${r.refreshes} |`
    }),
  ].join('\n')
}

await main()
process.exit(0)
