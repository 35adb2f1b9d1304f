/**
 * What the ClickHouse endpoint's isolation and checks cost a query
 * (`npm run bench:clickhouse-http`): the engine's own parse (formatQuery,
 * EXPLAIN AST), the reach check, and a session of its own per request,
 * against the floor of running the statement on one shared read-only
 * session, as the endpoint did before issue 26. Both in this process, on
 * the same embedded store with real rows, interleaved in rounds (medians
 * and ratios side by side: the machine is shared); then the same queries
 * end to end over HTTP through the real endpoint with @clickhouse/client.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '@clickhouse/client'
import { Session } from 'chdb'
import { parseConfig } from '../collector/config.ts'
import { createClickHouseHttp } from '../collector/extensions/clickhouse-http/server.ts'
import { checkReach, formatClause } from '../collector/extensions/clickhouse-http/policy.ts'
import { createLogger } from '../collector/server/logger.ts'
import { createClickHouseExporter } from '../exporters/clickhouse/exporter.ts'
import { openReadOnlySql } from '../exporters/clickhouse/read-only.ts'
import { parseActivity, type Activity } from '../schemas/activity.ts'

const ROWS = Number(process.env.BENCH_ROWS ?? 50_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const PER_ROUND = Number(process.env.BENCH_PER_ROUND ?? 40)

const QUERIES: Record<string, string> = {
  'SELECT 1': 'SELECT 1',
  'a Grafana panel (hourly counts, a day)': `SELECT toStartOfHour(timestamp) AS t, action, count() AS n FROM activities WHERE timestamp >= now() - INTERVAL 1 DAY GROUP BY t, action ORDER BY t FORMAT JSON`,
  'schema browsing (system.columns)': `SELECT name, type FROM system.columns WHERE database = 'actline' AND table = 'activities' FORMAT JSONEachRow`,
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'actline-bench-chhttp-'))
  const logger = createLogger('silent')
  const config = parseConfig({ data_dir: dir, exporters: { postgres: { enabled: false } } })
  const exporter = createClickHouseExporter({ ...config.exporters.clickhouse, path: join(dir, 'clickhouse') }, logger)
  await exporter.start()
  process.stderr.write(`storing ${ROWS.toLocaleString('en-US')} activities...\n`)
  const now = Date.now()
  for (let i = 0; i < ROWS; i += 5000) {
    const batch: Activity[] = []
    for (let j = i; j < Math.min(ROWS, i + 5000); j++) {
      const r = parseActivity({ action: ['order.create', 'order.update', 'user.login'][j % 3], source: 'user', actor_id: `u${j % 100}`, timestamp: now - (j % 86_400) * 1000 }, now)
      if (r.ok) batch.push(r.activity)
    }
    const outcome = await exporter.export(batch)
    if (outcome.status !== 'success') throw new Error(`export failed: ${JSON.stringify(outcome)}`)
  }

  const limits = config.server.clickhouse_http
  const shared = new Session(join(dir, 'clickhouse'))
  await shared.queryAsync(`SET max_execution_time = ${limits.max_execution_time_s}, max_result_rows = ${limits.max_result_rows}, max_memory_usage = ${limits.max_memory_usage_bytes}, output_format_json_quote_64bit_integers = 1, readonly = 1`)
  await shared.queryAsync('USE actline')
  const sql = await openReadOnlySql(join(dir, 'clickhouse'), 'actline', limits, 0)
  const tableFunctions = await sql.request({ database: 'actline', settings: {} }, (s) => s.tableFunctions())

  /** The endpoint's path without HTTP: its own session, the engine's parse, the reach check, the streamed result. */
  const isolated = (text: string) =>
    sql.request({ database: 'actline', settings: {}, signal: AbortSignal.timeout(60_000) }, async (s) => {
      const canonical = await s.canonical(text)
      const { select } = checkReach(await s.explain(canonical), { store: 'actline', current: 'actline', engineTableFunctions: tableFunctions })
      const format = formatClause(canonical) ?? 'TabSeparated'
      return s.stream(canonical, { format, maxBytes: limits.max_result_bytes, signal: AbortSignal.timeout(60_000), oneShot: !select })
    })
  const floor = (text: string) => shared.queryAsync(text, { format: formatClause(text) ?? 'TabSeparated' })

  const results: Record<string, { floorUs: number; isolatedUs: number; floorCpuUs: number; isolatedCpuUs: number }> = {}
  for (const [name, text] of Object.entries(QUERIES)) {
    for (let i = 0; i < 5; i++) {
      await floor(text)
      await isolated(text)
    }
    const lat = { floor: [] as number[], isolated: [] as number[] }
    const cpu = { floor: [] as number[], isolated: [] as number[] }
    for (let round = 0; round < ROUNDS; round++) {
      for (const [path, run] of [['floor', floor], ['isolated', isolated]] as const) {
        const c0 = cpuMs()
        for (let i = 0; i < PER_ROUND; i++) {
          const t0 = performance.now()
          await run(text)
          lat[path].push((performance.now() - t0) * 1000)
        }
        cpu[path].push(((cpuMs() - c0) * 1000) / PER_ROUND)
      }
      process.stderr.write(`  ${name}: round ${round + 1}/${ROUNDS}\n`)
    }
    results[name] = { floorUs: median(lat.floor), isolatedUs: median(lat.isolated), floorCpuUs: median(cpu.floor), isolatedCpuUs: median(cpu.isolated) }
  }

  // The same, end to end: the real endpoint on a loopback port, @clickhouse/client as Grafana's datasource would be.
  const endpoint = createClickHouseHttp({ config: { ...limits, port: 0 }, auth: config.auth, browser: config.server, logger, session: async () => sql })
  const url = await endpoint.start()
  const client = createClient({ url: url!, database: 'actline' })
  const http: Record<string, number> = {}
  for (const [name, text] of Object.entries(QUERIES)) {
    const times: number[] = []
    for (let i = 0; i < ROUNDS * PER_ROUND; i++) {
      const t0 = performance.now()
      const rs = await client.query({ query: text.replace(/ FORMAT \w+$/, ''), format: 'JSON' })
      await rs.text()
      times.push((performance.now() - t0) * 1000)
    }
    http[name] = median(times)
  }
  await client.close()
  await endpoint.close()
  await sql.close()
  shared.close()
  await exporter.shutdown()
  rmSync(dir, { recursive: true, force: true })

  const ms = (us: number) => (us / 1000).toFixed(2)
  console.log(`\n${ROWS.toLocaleString('en-US')} activities, ${ROUNDS} rounds of ${PER_ROUND} queries per path, interleaved; medians\n`)
  console.log('| query | shared session (before) | own session + parse + check | ratio | CPU per query, before | CPU per query, now | over HTTP (@clickhouse/client) |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const [name, r] of Object.entries(results)) {
    console.log(`| ${name} | ${ms(r.floorUs)} ms | ${ms(r.isolatedUs)} ms | ${(r.isolatedUs / r.floorUs).toFixed(2)}x | ${ms(r.floorCpuUs)} ms | ${ms(r.isolatedCpuUs)} ms | ${ms(http[name]!)} ms |`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
