/**
 * `npm run bench:cdc`: what change-data capture costs the app's writes
 * (bench/cdc-write-path.ts: none, one audit trigger, capture, capture with
 * the context message, side by side), then its throughput end to end. On
 * the real PostgreSQL server (PG_URL), a scratch table in the collector's
 * publication takes BENCH_ROWS inserts in transactions of BENCH_TX_ROWS
 * rows, as fast as one connection commits them, while the collector (a real
 * process, embedded stores, the same 2 cores) captures them; it reports how
 * fast the rows were in the log and in both stores, and the collector's CPU
 * per change, for plain rows and for rows with values the fallbacks handle
 * (NaN, infinity, a lone-surrogate escape, a value made a marker), side by
 * side, twice each; then one transaction of BENCH_BIG_ROWS rows and the
 * collector's peak RSS reading it.
 *
 *   npm run bench:cdc          # BENCH_ROWS=100000 BENCH_TX_ROWS=1000 BENCH_BIG_ROWS=1000000
 *   BENCH_SECTIONS=write npm run bench:cdc    # or throughput, or throughput,bigtx; all by default
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { writePath } from './cdc-write-path.ts'
import { metrics, startCollector } from './collector-process.ts'
import { processCpu } from './proc-cpu.ts'

const SERVER = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const ROWS = Number(process.env.BENCH_ROWS ?? 100_000)
const TX_ROWS = Number(process.env.BENCH_TX_ROWS ?? 1000)
const SECTIONS = (process.env.BENCH_SECTIONS ?? 'write,throughput,bigtx').split(',')
const BIG_ROWS = Number(process.env.BENCH_BIG_ROWS ?? 1_000_000)

const droppedValues = async (url: string) => Number(/actline_cdc_changes_total\{slot="[^"]+",outcome="values_dropped"\} (\d+)/.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0)

async function main() {
  const name = `actline_bench_cdc_${process.pid}`
  const admin = new pg.Client({ connectionString: SERVER })
  await admin.connect()
  const version = (await admin.query('SHOW server_version')).rows[0].server_version
  if ((await admin.query('SHOW wal_level')).rows[0].wal_level !== 'logical') throw new Error('bench:cdc needs wal_level = logical on the server (ALTER SYSTEM SET wal_level = logical, then restart)')
  await admin.query(`CREATE DATABASE ${name}`)
  const url = new URL(SERVER)
  url.pathname = `/${name}`
  const db = url.toString()
  const dir = mkdtempSync(join(tmpdir(), 'actline-bench-cdc-'))
  const client = new pg.Client({ connectionString: db })
  let collector: Awaited<ReturnType<typeof startCollector>> | undefined
  try {
    await client.connect()
    console.log(`bench:cdc on PostgreSQL ${version}`)
    if (SECTIONS.includes('write')) await writePath(db, dir, name)
    if (!SECTIONS.includes('throughput')) return
    await client.query(`CREATE TABLE captured (id bigserial PRIMARY KEY, account int NOT NULL, amount_cents int NOT NULL, note text, ratio float8, at timestamptz, doc json)`)
    const configFile = join(dir, 'collector.yaml')
    writeFileSync(configFile, `data_dir: ${join(dir, 'data')}\nserver: { port: 0, log_level: warn }\nreceivers: { postgres_cdc: { enabled: true, url: "${db}", tables: [public.captured], slot: ${name}, publication: ${name} } }\n`)
    collector = await startCollector(configFile)
    const running = collector
    const lagOf = async () => Number((await client.query(`SELECT greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::float8 AS lag FROM pg_replication_slots WHERE slot_name = $1`, [name])).rows[0]?.lag ?? 0)
    const inLog = async () => Number(/actline_cdc_changes_total\{slot="[^"]+",outcome="stored"\} (\d+)/.exec(await (await fetch(`${running.url}/metrics`)).text())?.[1] ?? 0)
    const stored = async () => {
      const m = await metrics(running.url)
      return Math.min(m.chExported, m.pgExported)
    }
    // Plain rows, and rows where a value of each kind the fallbacks handle (NaN, infinity, a lone-surrogate escape
    // in json, a 10 KB note made a marker) is in every fifth: the same columns, side by side, twice each.
    const MIXES = {
      plain: `SELECT g % 1000, g % 100000, 'payment ' || g, g / 7.0, now(), json_build_object('n', g) FROM generate_series($1::int, $2::int) AS g`,
      hostile: `SELECT g % 1000, g % 100000, CASE WHEN g % 5 = 0 THEN repeat('n', 10000) ELSE 'payment ' || g END,
                  CASE WHEN g % 5 = 1 THEN 'NaN'::float8 ELSE g / 7.0 END, CASE WHEN g % 5 = 2 THEN 'infinity'::timestamptz ELSE now() END,
                  CASE WHEN g % 5 = 3 THEN '{"s":"\\ud800"}'::json ELSE json_build_object('n', g) END FROM generate_series($1::int, $2::int) AS g`,
    }
    const results: Record<string, { stream: number; endToEnd: number; cpuUs: number }[]> = { plain: [], hostile: [] }
    let maxLag = 0
    let base = 0
    for (const round of [1, 2]) {
      for (const mix of ['plain', 'hostile'] as const) {
        console.log(`throughput, ${mix} rows, round ${round}: ${ROWS.toLocaleString('en-US')} inserts in transactions of ${TX_ROWS}, captured by the collector process (embedded stores)`)
        const t0 = performance.now()
        const cpu0 = processCpu(running.child.pid!)
        let lastLine = 0
        let logged: number | undefined
        for (let n = 0; n < ROWS; n += TX_ROWS) {
          await client.query(`INSERT INTO captured (account, amount_cents, note, ratio, at, doc) ${MIXES[mix]}`, [base + n, base + Math.min(ROWS, n + TX_ROWS) - 1])
          if (performance.now() - lastLine > 2000) {
            lastLine = performance.now()
            maxLag = Math.max(maxLag, await lagOf())
            process.stderr.write(`  committed ${(n + TX_ROWS).toLocaleString('en-US')}, stored ${((await stored()) - base).toLocaleString('en-US')}\n`)
          }
        }
        while ((await stored()) < base + ROWS) {
          if (logged === undefined && (await inLog()) + (await droppedValues(running.url)) >= base + ROWS) logged = (performance.now() - t0) / 1000
          maxLag = Math.max(maxLag, await lagOf())
          await new Promise((r) => setTimeout(r, 100))
        }
        const done = (performance.now() - t0) / 1000
        const cpu = processCpu(running.child.pid!) - cpu0
        logged ??= done
        results[mix]!.push({ stream: ROWS / logged, endToEnd: ROWS / done, cpuUs: (cpu / ROWS) * 1e6 })
        console.log(`  in the log at ${Math.round(ROWS / logged).toLocaleString('en-US')} row changes/s (the stream), in both stores at ${Math.round(ROWS / done).toLocaleString('en-US')}/s end to end; collector CPU ${((cpu / ROWS) * 1e6).toFixed(0)} µs a change`)
        base += ROWS
      }
    }
    const m = await metrics(running.url)
    // Two rounds each: their mean, a ratio of the same rows' totals.
    const med = (mix: string, k: 'stream' | 'endToEnd' | 'cpuUs') => results[mix]!.reduce((sum, r) => sum + r[k], 0) / results[mix]!.length
    console.log(`hostile against plain (means of ${results.plain!.length} rounds): stream ${Math.round(med('hostile', 'stream')).toLocaleString('en-US')} against ${Math.round(med('plain', 'stream')).toLocaleString('en-US')} row changes/s (${(med('hostile', 'stream') / med('plain', 'stream')).toFixed(2)}x), end to end ${Math.round(med('hostile', 'endToEnd')).toLocaleString('en-US')} against ${Math.round(med('plain', 'endToEnd')).toLocaleString('en-US')}/s, collector CPU ${med('hostile', 'cpuUs').toFixed(0)} against ${med('plain', 'cpuUs').toFixed(0)} µs a change (${(med('hostile', 'cpuUs') / med('plain', 'cpuUs')).toFixed(2)}x); slot lag at most ${(maxLag / 1024 ** 2).toFixed(1)} MiB; values dropped ${await droppedValues(running.url)}; stored: ClickHouse ${m.chExported}, audit trail ${m.pgExported}`)
    if (SECTIONS.includes('bigtx')) {
      // One transaction of BIG_ROWS rows: the collector holds a piece of it at a time (max_batch), whatever its size.
      const before = running.peakRss()
      console.log(`one transaction of ${BIG_ROWS.toLocaleString('en-US')} rows (peak RSS so far ${(before / 1024 ** 2).toFixed(0)} MiB)`)
      const t0 = performance.now()
      await client.query(`INSERT INTO captured (account, amount_cents, note, ratio, at, doc) ${MIXES.plain}`, [base, base + BIG_ROWS - 1])
      let lastLine = 0
      while ((await stored()) < base + BIG_ROWS) {
        if (performance.now() - lastLine > 5000) {
          lastLine = performance.now()
          process.stderr.write(`  stored ${((await stored()) - base).toLocaleString('en-US')} of ${BIG_ROWS.toLocaleString('en-US')}, RSS ${(running.rss() / 1024 ** 2).toFixed(0)} MiB\n`)
        }
        await new Promise((r) => setTimeout(r, 200))
      }
      console.log(`  stored in both after ${((performance.now() - t0) / 1000).toFixed(1)} s; peak RSS ${(running.peakRss() / 1024 ** 2).toFixed(0)} MiB (before it: ${(before / 1024 ** 2).toFixed(0)} MiB)`)
    }
  } finally {
    collector?.child.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 2000))
    await client.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE $1`, [`${name}%`]).catch(() => {})
    await client.end().catch(() => {})
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
    await admin.end()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
