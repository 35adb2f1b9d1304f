/**
 * `npm run bench:targets`: issue 16's targets, each measured on a collector
 * process of its own (fresh data directory, `wal.durability: fsync`), loaded
 * by bench/load-generator.ts in its own process with bench:ingest's event
 * mix (500-event NDJSON bodies, built before the clock starts); every
 * accepted row is counted in both stores after each section.
 *
 * Sections (BENCH_SECTIONS, comma-separated; all by default):
 * - latency: request p99 at 10,000 and 30,000 events/s (open loop), idle RSS;
 * - default: embedded ClickHouse + PGlite, saturated for BENCH_SUSTAIN_SECONDS
 *   (60): end to end = accepted / (load time + time until all are stored);
 * - server: the same with the real PostgreSQL server at PG_URL (a scratch database);
 * - intake: 10 s bursts as fast as 16 connections go, exporters running: accepted/s;
 * - catchup: the real server behind a real TCP proxy, 10,000 events/s
 *   throughout; the proxy is closed for BENCH_OUTAGE_SECONDS (120) and opened
 *   again; the backlog's drain time T gives the export rate over intake as
 *   1 + outage / T (the backlog is outage x intake, and intake goes on).
 *
 *   npm run bench:targets      # PG_URL=postgres://postgres@127.0.0.1:5432/postgres for server and catchup
 *   BENCH_PIPELINE='{ batch: { send_batch_size: 10000 } }' BENCH_SECTIONS=default npm run bench:targets   # an A/B
 */
import { writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { createScratchDatabase, openStores, tempDir, testConfig } from '../test/helpers/stores.ts'
import { startTcpProxy } from '../test/helpers/tcp-proxy.ts'
import { metrics, runGenerator, startCollector, timeToStored } from './collector-process.ts'

const SECTIONS = (process.env.BENCH_SECTIONS ?? 'latency,default,server,intake,catchup').split(',')
const SUSTAIN = Number(process.env.BENCH_SUSTAIN_SECONDS ?? 60)
const OUTAGE = Number(process.env.BENCH_OUTAGE_SECONDS ?? 120)
const BATCH = 500
/** Extra `pipeline:` keys for an A/B, e.g. '{ batch: { send_batch_size: 10000 } }'. */
const PIPELINE = process.env.BENCH_PIPELINE ? `pipeline: ${process.env.BENCH_PIPELINE}\n` : ''
const MB = 2 ** 20

function log(msg: string) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`)
}

const results: { target: string; goal: string; measured: string; met: boolean }[] = []
const n = (v: number) => Math.round(v).toLocaleString('en-US')
function record(target: string, goal: string, measured: string, met: boolean) {
  results.push({ target, goal, measured, met })
  log(`  ${target}: ${measured} (${met ? 'met' : 'missed'}, goal ${goal})`)
}

/** Activities in the log `exporter` has not passed yet. */
const queued = async (url: string, exporter: 'clickhouse' | 'postgres') => (await metrics(url)).queued[exporter]

/** A collector on a fresh directory; `postgresUrl` puts the audit trail on a server. */
async function withCollector<T>(name: string, postgresUrl: string | undefined, run: (c: Awaited<ReturnType<typeof startCollector>>) => Promise<T>): Promise<T> {
  const dir = tempDir(`actline-bench-targets-${name}-`)
  const configFile = join(dir.path, 'collector.yaml')
  const postgres = postgresUrl ? `exporters: { postgres: { url: "${postgresUrl}" } }\n` : ''
  writeFileSync(configFile, `data_dir: ${dir.path}\nserver: { port: 0, log_level: warn }\nwal: { durability: fsync }\n${postgres}${PIPELINE}`)
  log(`[${name}] starting the collector (embedded ClickHouse + ${postgresUrl ? 'the PostgreSQL server' : 'PGlite'})`)
  const collector = await startCollector(configFile)
  try {
    const value = await run(collector)
    await timeToStored(collector.url)
    const m = await metrics(collector.url)
    const exited = new Promise((r) => collector.child.once('exit', r))
    collector.child.kill('SIGTERM')
    await exited
    // Every accepted row, counted in both stores.
    const stores = await openStores(testConfig(dir.path, postgresUrl ? { exporters: { postgres: { url: postgresUrl } } } : {}))
    try {
      const ch = Number((await (await stores.clickhouse.query({ query: 'SELECT count() AS n FROM actline.activities', format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n)
      const pgCount = Number((await stores.postgres.query('SELECT count(*)::bigint AS n FROM audit_log')).rows[0].n)
      if (ch !== m.accepted || pgCount !== m.pgExported || pgCount === 0) throw new Error(`[${name}] stores do not hold every accepted row: accepted ${m.accepted}, ClickHouse ${ch}, audit_log ${pgCount} of ${m.pgExported}`)
      log(`[${name}] verified: ${ch.toLocaleString('en-US')} rows in ClickHouse, ${pgCount.toLocaleString('en-US')} in audit_log`)
    } finally {
      await stores.close()
    }
    return value
  } finally {
    if (collector.child.exitCode === null) collector.child.kill('SIGKILL')
    dir.remove()
  }
}

/** Closed loop for `seconds`, then until stored: accepted/s and end to end/s, and when each store caught up. */
async function saturate(url: string, seconds: number, concurrency: number) {
  const load = await runGenerator({ url, mode: 'max', rate: 0, concurrency, durationMs: seconds * 1000, batchSize: BATCH })
  const t0 = performance.now()
  const left = (await metrics(url)).queued
  const caughtUp: Record<string, number> = {}
  while (Object.keys(caughtUp).length < 2) {
    for (const name of ['clickhouse', 'postgres'] as const) if (!(name in caughtUp) && (await queued(url, name)) === 0) caughtUp[name] = Math.round(performance.now() - t0)
    await new Promise((r) => setTimeout(r, 20))
  }
  const drainMs = Math.max(...Object.values(caughtUp))
  log(`  when the load stopped: ${left.clickhouse.toLocaleString('en-US')} events behind in ClickHouse (caught up ${caughtUp.clickhouse} ms later), ${left.postgres.toLocaleString('en-US')} behind the audit trail's cursor (${caughtUp.postgres} ms)`)
  return { accepted: load.accepted / (load.elapsedMs / 1000), endToEnd: load.accepted / ((load.elapsedMs + drainMs) / 1000), p99: load.latencyMs.p99, drainMs, statuses: load.statuses }
}

const SECTION: Record<string, () => Promise<void>> = {
  async latency() {
    await withCollector('latency', undefined, async (c) => {
      await new Promise((r) => setTimeout(r, 5000))
      const idle = c.rss() / MB
      record('idle RSS (both engines, nothing sent yet)', '< 350 MB', `${n(idle)} MB`, idle < 350)
      await runGenerator({ url: c.url, mode: 'rate', rate: 10, concurrency: 64, durationMs: 3000, batchSize: BATCH })
      await timeToStored(c.url)
      for (const [eventsPerS, goal] of [[10_000, 20], [30_000, 50]] as const) {
        const r = await runGenerator({ url: c.url, mode: 'rate', rate: eventsPerS / BATCH, concurrency: 64, durationMs: 20_000, batchSize: BATCH })
        await timeToStored(c.url)
        const refused = Object.entries(r.statuses).filter(([code]) => !code.startsWith('2')).reduce((sum, [, k]) => sum + k, 0)
        record(`request p99 at ${eventsPerS.toLocaleString('en-US')} events/s${refused ? ` (${refused} of ${r.requests} refused)` : ''}`, `< ${goal} ms`, `${r.latencyMs.p99} ms`, r.latencyMs.p99 < goal && refused === 0)
      }
      await new Promise((r) => setTimeout(r, 5000))
      record('RSS idle after that load', '< 350 MB', `${n(c.rss() / MB)} MB`, c.rss() / MB < 350)
    })
  },
  async default() {
    await withCollector('default', undefined, async (c) => {
      const s = await saturate(c.url, SUSTAIN, 8)
      log(`  accepted ${Math.round(s.accepted)}/s, all stored ${s.drainMs} ms after, statuses ${JSON.stringify(s.statuses)}`)
      record(`end to end, embedded ClickHouse + PGlite, ${SUSTAIN} s`, '>= 30,000 events/s', `${n(s.endToEnd)} events/s`, s.endToEnd >= 30_000)
      record('peak RSS under saturation (VmHWM)', '< 600 MB', `${n(c.peakRss() / MB)} MB`, c.peakRss() / MB < 600)
    })
  },
  async server() {
    const db = await scratch()
    if (!db) return
    try {
      await withCollector('server', db.url, async (c) => {
        const s = await saturate(c.url, 30, 8)
        log(`  accepted ${Math.round(s.accepted)}/s, all stored ${s.drainMs} ms after, statuses ${JSON.stringify(s.statuses)}`)
        record('end to end, embedded ClickHouse + the PostgreSQL server, 30 s', '>= 50,000 events/s', `${n(s.endToEnd)} events/s`, s.endToEnd >= 50_000)
      })
    } finally {
      await db.drop()
    }
  },
  async intake() {
    await withCollector('intake', undefined, async (c) => {
      const bursts: number[] = []
      for (let i = 0; i < 3; i++) {
        const load = await runGenerator({ url: c.url, mode: 'max', rate: 0, concurrency: 16, durationMs: 10_000, batchSize: BATCH })
        bursts.push(load.accepted / (load.elapsedMs / 1000))
        await timeToStored(c.url)
      }
      bursts.sort((a, b) => a - b)
      log(`  bursts: ${bursts.map((b) => Math.round(b)).join(', ')} accepted/s`)
      record('intake, log fsynced, exporters running, 10 s bursts (median of 3)', '>= 80,000 events/s', `${n(bursts[1]!)} events/s`, bursts[1]! >= 80_000)
    })
  },
  async catchup() {
    const db = await scratch()
    if (!db) return
    const target = new URL(db.url)
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432))
    const viaProxy = new URL(db.url)
    viaProxy.port = String(proxy.port)
    try {
      await withCollector('catchup', viaProxy.toString(), async (c) => {
        const warm = 20
        const load = runGenerator({ url: c.url, mode: 'rate', rate: 10_000 / BATCH, concurrency: 64, durationMs: (warm + OUTAGE + 2 * OUTAGE) * 1000, batchSize: BATCH })
        await new Promise((r) => setTimeout(r, warm * 1000))
        log(`[catchup] the PostgreSQL server's proxy closes for ${OUTAGE} s`)
        await proxy.cut()
        await new Promise((r) => setTimeout(r, OUTAGE * 1000))
        const backlog = await queued(c.url, 'postgres')
        await proxy.restore()
        const t0 = performance.now()
        // Drained once what is left is under the batch timeout's second of intake.
        const steady = backlog / OUTAGE
        while ((await queued(c.url, 'postgres')) > 1.5 * steady) {
          if (performance.now() - t0 > 2 * OUTAGE * 1000) break
          await new Promise((r) => setTimeout(r, 200))
        }
        const drain = (performance.now() - t0) / 1000
        log(`  backlog ${backlog.toLocaleString('en-US')} events of the log behind the audit trail's cursor after ${OUTAGE} s; drained in ${drain.toFixed(1)} s (the retry's next attempt included) while intake went on`)
        record(`catch-up after ${OUTAGE} s of the store down at 10,000 events/s (export rate over intake)`, '>= 3x', `${(1 + OUTAGE / drain).toFixed(1)}x (drained in ${drain.toFixed(0)} s)`, 1 + OUTAGE / drain >= 3)
        await load
      })
    } finally {
      await proxy.close()
      await db.drop()
    }
  },
}

async function scratch() {
  if (!process.env.PG_URL) {
    log('PG_URL is not set: skipping the sections on the PostgreSQL server')
    return undefined
  }
  return createScratchDatabase()
}

log(`bench:targets on ${cpus().length} x ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}: ${SECTIONS.join(', ')}`)
for (const name of SECTIONS) {
  const section = SECTION[name]
  if (!section) throw new Error(`unknown section ${name}: one of ${Object.keys(SECTION).join(', ')}`)
  await section()
}
console.log('\n| target | goal | measured | |\n| --- | --- | ---: | --- |')
for (const r of results) console.log(`| ${r.target} | ${r.goal} | ${r.measured} | ${r.met ? 'met' : 'missed'} |`)
