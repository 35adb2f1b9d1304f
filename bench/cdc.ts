/**
 * `npm run bench:cdc`: what change-data capture costs the app's writes
 * (bench/cdc-write-path.ts: none, one audit trigger, capture, capture with
 * the context message, side by side), then its throughput end to end. On
 * the real PostgreSQL server (PG_URL), a scratch table in the collector's
 * publication takes BENCH_ROWS inserts in transactions of BENCH_TX_ROWS
 * rows, as fast as one connection commits them, while the collector (a real
 * process, embedded stores, the same 2 cores) captures them; it reports how
 * fast the rows were committed, how fast they were in both stores, and the
 * most WAL the slot held meanwhile (the lag).
 *
 *   npm run bench:cdc          # BENCH_ROWS=200000 BENCH_TX_ROWS=1000
 *   BENCH_SECTIONS=write npm run bench:cdc    # or throughput; both by default
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { writePath } from './cdc-write-path.ts'
import { metrics, startCollector } from './collector-process.ts'

const SERVER = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const ROWS = Number(process.env.BENCH_ROWS ?? 200_000)
const TX_ROWS = Number(process.env.BENCH_TX_ROWS ?? 1000)
const SECTIONS = (process.env.BENCH_SECTIONS ?? 'write,throughput').split(',')

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
    await client.query(`CREATE TABLE captured (id bigserial PRIMARY KEY, account int NOT NULL, amount_cents int NOT NULL, note text)`)
    const configFile = join(dir, 'collector.yaml')
    writeFileSync(configFile, `data_dir: ${join(dir, 'data')}\nserver: { port: 0, log_level: warn }\nreceivers: { postgres_cdc: { enabled: true, url: "${db}", tables: [public.captured], slot: ${name}, publication: ${name} } }\n`)
    collector = await startCollector(configFile)
    console.log(`throughput: ${ROWS.toLocaleString('en-US')} inserts in transactions of ${TX_ROWS}, captured by the collector process (embedded stores)`)
    const lagOf = async () => Number((await client.query(`SELECT greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::float8 AS lag FROM pg_replication_slots WHERE slot_name = $1`, [name])).rows[0]?.lag ?? 0)
    // Two clocks: when the stream had every change in the write-ahead log (the receiver's count), and when both stores did.
    let logged: number | undefined
    const stored = async () => {
      const text = await (await fetch(`${collector!.url}/metrics`)).text()
      const inLog = Number(/actline_cdc_changes_total\{slot="[^"]+",outcome="stored"\} (\d+)/.exec(text)?.[1] ?? 0)
      if (logged === undefined && inLog >= ROWS) logged = (performance.now() - t0) / 1000
      const m = await metrics(collector!.url)
      return Math.min(m.chExported, m.pgExported)
    }
    let maxLag = 0
    let lastLine = 0
    let t0 = performance.now()
    for (let n = 0; n < ROWS; n += TX_ROWS) {
      await client.query(`INSERT INTO captured (account, amount_cents, note) SELECT g % 1000, g % 100000, 'payment ' || g FROM generate_series($1::int, $2::int) AS g`, [n, Math.min(ROWS, n + TX_ROWS) - 1])
      if (performance.now() - lastLine > 2000) {
        lastLine = performance.now()
        maxLag = Math.max(maxLag, await lagOf())
        process.stderr.write(`  committed ${(n + TX_ROWS).toLocaleString('en-US')}, stored ${(await stored()).toLocaleString('en-US')}, slot lag ${(maxLag / 1024 ** 2).toFixed(0)} MiB max\n`)
      }
    }
    const committed = (performance.now() - t0) / 1000
    while ((await stored()) < ROWS) {
      maxLag = Math.max(maxLag, await lagOf())
      if (performance.now() - lastLine > 2000) {
        lastLine = performance.now()
        process.stderr.write(`  stored ${(await stored()).toLocaleString('en-US')} of ${ROWS.toLocaleString('en-US')}\n`)
      }
      await new Promise((r) => setTimeout(r, 100))
    }
    const done = (performance.now() - t0) / 1000
    const m = await metrics(collector.url)
    console.log(`committed in ${committed.toFixed(1)} s (${Math.round(ROWS / committed).toLocaleString('en-US')} rows/s); in the write-ahead log after ${logged?.toFixed(1)} s (${logged ? Math.round(ROWS / logged).toLocaleString('en-US') : '?'} row changes/s: the stream); in ClickHouse and the audit trail after ${done.toFixed(1)} s (${Math.round(ROWS / done).toLocaleString('en-US')} row changes/s end to end); slot lag at most ${(maxLag / 1024 ** 2).toFixed(1)} MiB; stored: ClickHouse ${m.chExported}, audit trail ${m.pgExported}`)
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
