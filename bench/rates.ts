/**
 * `npm run bench:rates`: what the collector costs at the rates apps really
 * send (issue 29): steady rates of small requests, not saturation. One
 * collector as a real process on the default embedded stores with
 * `wal.durability: fsync`, fed by bench/load-generator.ts (its own process,
 * open loop) with bench:ingest's mix, half of it audited. Each step runs
 * BENCH_SECONDS, then waits until both stores hold every accepted activity,
 * so the CPU of exporting them is counted in the step.
 *
 * Per step, from the kernel (/proc) and the collector's /metrics:
 * - the collector's CPU per activity, whole process and per thread group:
 *   the main thread, libuv's pool (the log's writes and fsyncs), V8's
 *   platform threads (GC, compiler), PGlite's worker, ClickHouse's threads
 *   (bench/thread-probe.cjs tells the unnamed ones apart);
 * - the main thread's CPU per request (issue 29's fixed cost per request);
 * - fsyncs and log records per second, inserts per second per store;
 * - request latency p50/p99 (from when each request was due), RSS.
 * Two references from the same run: a bare Fastify server (bench/http-floor.ts)
 * fed the same requests right after each step, the floor any Node.js
 * collector pays per request on this machine; and JSON parse and encode of
 * the mix in this process, before and after, so a slow day can be scaled.
 *
 *   npm run bench:rates        # BENCH_SECONDS=15; BENCH_STEPS=500x5,5000x50 (activities/s x per request)
 *   BENCH_CONFIG='wal: { durability: none }' npm run bench:rates   # extra collector YAML, for an A/B
 */
import { spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../test/helpers/stores.ts'
import { makeEvents } from './load-generator.ts'
import { runGenerator, startCollector } from './collector-process.ts'
import { processCpu } from './proc-cpu.ts'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15)
const EXTRA = process.env.BENCH_CONFIG ? `${process.env.BENCH_CONFIG}\n` : ''
const DEFAULT_STEPS = '100x1,100x5,500x1,500x5,500x50,5000x5,5000x50,5000x1000,20000x50,20000x1000'
const STEPS = (process.env.BENCH_STEPS ?? DEFAULT_STEPS).split(',').map((s) => s.split('x').map(Number) as [number, number])
const AUDITED = 0.5
const TICK_MS = 10 // USER_HZ
const root = fileURLToPath(new URL('..', import.meta.url))

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`)

/** Activities per second this process parses and encodes as JSON: the machine's speed today, to scale figures by. */
function jsonReference(): number {
  const events = makeEvents(1000, 7)
  let n = 0
  const t0 = performance.now()
  while (performance.now() - t0 < 2000) {
    for (const line of events) JSON.stringify(JSON.parse(line))
    n += events.length
  }
  return Math.round(n / ((performance.now() - t0) / 1000))
}

type Group = 'main' | 'libuv pool' | 'V8 platform' | 'PGlite worker' | 'ClickHouse'
const GROUPS: Group[] = ['main', 'libuv pool', 'V8 platform', 'PGlite worker', 'ClickHouse']

/** CPU ms of every thread of `pid`, by group. */
function threadGroups(pid: number, probeDir: string): Map<Group, number> {
  const probe = JSON.parse(readFileSync(join(probeDir, 'main.json'), 'utf8')) as { main: string; platform: string[] }
  const workers = new Set(readdirSync(probeDir).filter((f) => f.startsWith('worker-')).map((f) => f.slice(7)))
  const platform = new Set(probe.platform)
  const out = new Map<Group, number>(GROUPS.map((g) => [g, 0]))
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    } catch {
      continue
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ms = (Number(fields[11]) + Number(fields[12])) * TICK_MS
    const group: Group = tid === probe.main ? 'main' : workers.has(tid) ? 'PGlite worker' : platform.has(tid) ? 'V8 platform' : comm === 'node' ? 'libuv pool' : 'ClickHouse'
    out.set(group, out.get(group)! + ms)
  }
  return out
}

async function scrape(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text()
  const get = (name: string) => Number(new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN)
  return {
    accepted: get('actline_receiver_activities_total{outcome="accepted"}'),
    queued: get('actline_exporter_queue_activities{exporter="clickhouse"}') + get('actline_exporter_queue_activities{exporter="postgres"}'),
    syncs: get('actline_wal_syncs_total'),
    records: get('actline_wal_records_total'),
    chInserts: get('actline_exporter_export_calls_total{exporter="clickhouse"}'),
    pgInserts: get('actline_exporter_export_calls_total{exporter="postgres"}'),
    rss: get('process_resident_memory_bytes'),
    // Since the last scrape.
    loopDelayMs: { p99: get('actline_event_loop_delay_seconds{quantile="0.99"}') * 1000, max: get('actline_event_loop_delay_seconds{quantile="1"}') * 1000 },
  }
}

/** A bare Fastify server's CPU per request at this rate and size: the floor. */
async function floor(rate: number, size: number): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench/http-floor.ts')], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const url = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', (line) => resolve((JSON.parse(line) as { url: string }).url)))
    await runGenerator({ url, mode: 'rate', rate: Math.min(rate / size, 50), concurrency: 64, durationMs: 1000, batchSize: size })
    const cpu0 = processCpu(child.pid!)
    const load = await runGenerator({ url, mode: 'rate', rate: rate / size, concurrency: 256, durationMs: Math.min(SECONDS, 10) * 1000, batchSize: size, shape: { auditShare: AUDITED } })
    return ((processCpu(child.pid!) - cpu0) * 1e6) / load.requests
  } finally {
    child.kill()
  }
}

async function drained(url: string) {
  // Not faster: each scrape is work for the collector, counted in the step.
  while ((await scrape(url)).queued > 0) await new Promise((r) => setTimeout(r, 250))
}

interface Step {
  rate: number
  per_request: number
  accepted_per_s: number
  cpu_us_per_activity: number
  core_share_pct: number
  threads_us_per_activity: Record<Group, number>
  main_us_per_request: number
  floor_us_per_request: number
  fsyncs_per_s: number
  records_per_fsync: number
  clickhouse_inserts_per_s: number
  postgres_inserts_per_s: number
  latency_ms: { p50: number; p99: number }
  event_loop_delay_ms: { p99: number; max: number }
  statuses: Record<string, number>
  rss_mb: number
}

async function main() {
  const machine = `${cpus().length} x ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
  log(`bench:rates on ${machine}; ${SECONDS} s a step, ${AUDITED * 100}% of activities audited${EXTRA ? `; extra config: ${EXTRA.trim()}` : ''}`)
  const referenceBefore = jsonReference()
  log(`CPU reference: ${referenceBefore.toLocaleString('en-US')} activities/s parsed and encoded as JSON`)

  const dir = tempDir('actline-bench-rates-')
  const probeDir = join(dir.path, 'threads')
  mkdirSync(probeDir)
  const configFile = join(dir.path, 'collector.yaml')
  // wal.durability is fsync by default: BENCH_CONFIG may set other wal keys.
  writeFileSync(configFile, `data_dir: ${join(dir.path, 'data')}\nserver: { port: 0, log_level: warn }\n${EXTRA}`)
  process.env.ACTLINE_THREAD_PROBE_DIR = probeDir
  const collector = await startCollector(configFile, ['--require', join(root, 'bench/thread-probe.cjs')])
  const pid = collector.child.pid!
  const steps: Step[] = []
  try {
    await new Promise((r) => setTimeout(r, 5000))
    const idle0 = threadGroups(pid, probeDir)
    const idleT0 = performance.now()
    await new Promise((r) => setTimeout(r, 5000))
    const idleShare = ([...threadGroups(pid, probeDir).values()].reduce((a, b) => a + b, 0) - [...idle0.values()].reduce((a, b) => a + b, 0)) / (performance.now() - idleT0)
    const idleRss = (await scrape(collector.url)).rss
    log(`idle: ${(idleShare * 100).toFixed(1)}% of a core, RSS ${Math.round(idleRss / 2 ** 20)} MB`)
    log('warm-up: 3 s at 500/s in requests of 5')
    await runGenerator({ url: collector.url, mode: 'rate', rate: 100, concurrency: 64, durationMs: 3000, batchSize: 5, shape: { auditShare: AUDITED } })
    await drained(collector.url)

    for (const [rate, size] of STEPS) {
      log(`step: ${rate.toLocaleString('en-US')} activities/s in requests of ${size} (${rate / size} requests/s) for ${SECONDS} s`)
      const m0 = await scrape(collector.url)
      const t0 = performance.now()
      const cpu0 = threadGroups(pid, probeDir)
      const load = await runGenerator({ url: collector.url, mode: 'rate', rate: rate / size, concurrency: 256, durationMs: SECONDS * 1000, batchSize: size, shape: { auditShare: AUDITED } })
      const loop = (await scrape(collector.url)).loopDelayMs
      await drained(collector.url)
      const cpu1 = threadGroups(pid, probeDir)
      const wall = (performance.now() - t0) / 1000
      const m1 = await scrape(collector.url)
      const accepted = m1.accepted - m0.accepted
      const requests = load.statuses['200'] ?? 0
      const us = (g: Group) => ((cpu1.get(g)! - cpu0.get(g)!) * 1000) / accepted
      const total = GROUPS.reduce((sum, g) => sum + us(g), 0)
      const step: Step = {
        rate,
        per_request: size,
        accepted_per_s: Math.round(accepted / (load.elapsedMs / 1000)),
        cpu_us_per_activity: Math.round(total),
        core_share_pct: Number(((total * accepted) / 1e6 / wall * 100).toFixed(1)),
        threads_us_per_activity: Object.fromEntries(GROUPS.map((g) => [g, Number(us(g).toFixed(1))])) as Record<Group, number>,
        main_us_per_request: Math.round((us('main') * accepted) / requests),
        floor_us_per_request: NaN,
        fsyncs_per_s: Math.round((m1.syncs - m0.syncs) / wall),
        records_per_fsync: Number(((m1.records - m0.records) / Math.max(1, m1.syncs - m0.syncs)).toFixed(2)),
        clickhouse_inserts_per_s: Number(((m1.chInserts - m0.chInserts) / wall).toFixed(1)),
        postgres_inserts_per_s: Number(((m1.pgInserts - m0.pgInserts) / wall).toFixed(1)),
        latency_ms: { p50: load.latencyMs.p50, p99: load.latencyMs.p99 },
        event_loop_delay_ms: { p99: Math.round(loop.p99), max: Math.round(loop.max) },
        statuses: load.statuses,
        rss_mb: Math.round(m1.rss / 2 ** 20),
      }
      step.floor_us_per_request = Math.round(await floor(rate, size))
      steps.push(step)
      log(`  ${step.cpu_us_per_activity} µs/activity (${step.core_share_pct}% of a core), main ${step.main_us_per_request} µs/request (a bare Fastify server: ${step.floor_us_per_request}), p99 ${step.latency_ms.p99} ms (event loop delay p99 ${step.event_loop_delay_ms.p99}, max ${step.event_loop_delay_ms.max} ms), ${step.fsyncs_per_s} fsyncs/s, inserts/s ClickHouse ${step.clickhouse_inserts_per_s} PostgreSQL ${step.postgres_inserts_per_s}`)
    }
    const peakRss = collector.peakRss()
    const referenceAfter = jsonReference()
    const result = { date: new Date().toISOString(), machine, seconds_per_step: SECONDS, audited_share: AUDITED, extra_config: EXTRA.trim() || undefined, cpu_reference_activities_per_s: [referenceBefore, referenceAfter], idle: { core_share_pct: Number((idleShare * 100).toFixed(1)), rss_mb: Math.round(idleRss / 2 ** 20) }, peak_rss_mb: Math.round(peakRss / 2 ** 20), steps }
    mkdirSync(join(root, 'bench/results'), { recursive: true })
    writeFileSync(join(root, 'bench/results/rates-latest.json'), JSON.stringify(result, null, 2) + '\n')
    console.log(`\nbench:rates ${result.date.slice(0, 10)}, ${machine}; CPU reference ${referenceBefore.toLocaleString('en-US')} / ${referenceAfter.toLocaleString('en-US')} activities/s (before / after); idle ${result.idle.core_share_pct}% of a core, RSS ${result.idle.rss_mb} MB; peak RSS ${result.peak_rss_mb} MB\n`)
    console.log(`| activities/s | per request | µs CPU per activity | share of a core | main µs per request | bare Fastify µs per request | ${GROUPS.map((g) => `${g} µs`).join(' | ')} | fsyncs/s | records per fsync | inserts/s ClickHouse | inserts/s PostgreSQL | p50 ms | p99 ms | loop delay p99 / max ms |`)
    console.log(`| ${Array(13 + GROUPS.length).fill('---:').join(' | ')} |`)
    for (const s of steps) {
      console.log(`| ${s.rate.toLocaleString('en-US')} | ${s.per_request} | **${s.cpu_us_per_activity}** | ${s.core_share_pct}% | ${s.main_us_per_request} | ${s.floor_us_per_request} | ${GROUPS.map((g) => s.threads_us_per_activity[g]).join(' | ')} | ${s.fsyncs_per_s} | ${s.records_per_fsync} | ${s.clickhouse_inserts_per_s} | ${s.postgres_inserts_per_s} | ${s.latency_ms.p50} | ${s.latency_ms.p99} | ${s.event_loop_delay_ms.p99} / ${s.event_loop_delay_ms.max} |`)
    }
  } finally {
    collector.child.kill('SIGTERM')
    await new Promise((r) => collector.child.once('exit', r))
    dir.remove()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
