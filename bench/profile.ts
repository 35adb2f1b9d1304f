/**
 * `npm run bench:profile`: where the collector's CPU goes per event, stage by
 * stage (issue 16's budget). The collector runs as a real process with
 * embedded stores and `wal.durability: fsync`, under V8's CPU profiler
 * (`--cpu-prof`, every thread: the main one and PGlite's worker), loaded by
 * bench/load-generator.ts in its own process with bench:ingest's event mix at
 * a fixed rate; every accepted event is waited for in both stores.
 *
 * Two sources, both per event accepted:
 * - the kernel's count of each thread's CPU (/proc/PID/task/TID/stat), over
 *   the loaded window: the main thread, ClickHouse's own threads (named by
 *   the engine), and Node's other threads (libuv's pool: file writes and
 *   fsync, zlib; V8's GC helpers; PGlite's worker);
 * - the CPU profiles, over the whole run: each sample of the main thread is
 *   charged to the nearest frame that names a stage (bench/profile-stages.ts),
 *   PGlite's worker to the PostgreSQL engine.
 *
 *   npm run bench:profile     # BENCH_RATE=20 (requests/s) BENCH_BATCH=500 (events a request) BENCH_SECONDS=20
 *   BENCH_RATE=100 BENCH_BATCH=5 npm run bench:profile      # issue 29: a small request's fixed cost
 *   BENCH_WAL='memory_tail_bytes: 0' npm run bench:profile   # extra wal keys, for an A/B
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { metrics, runGenerator, startCollector, threadCpu } from './collector-process.ts'
import { chargeProfile, topFrames, type CpuProfile } from './profile-stages.ts'

const RATE = Number(process.env.BENCH_RATE ?? 20)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
const BATCH = Number(process.env.BENCH_BATCH ?? 500)
const WAL_EXTRA = process.env.BENCH_WAL ? `, ${process.env.BENCH_WAL}` : ''

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'actline-bench-profile-'))
  const profiles = join(dir, 'profiles')
  const configFile = join(dir, 'collector.yaml')
  writeFileSync(configFile, `data_dir: ${join(dir, 'data')}\nserver: { port: 0, log_level: warn }\nwal: { durability: fsync${WAL_EXTRA} }\n`)
  const { child, url } = await startCollector(configFile, ['--cpu-prof', `--cpu-prof-dir=${profiles}`, '--cpu-prof-interval=500'])
  try {
    console.log(`bench:profile: ${RATE * BATCH} events/s offered (${RATE} requests/s of ${BATCH}) for ${SECONDS} s, wal.durability fsync${WAL_EXTRA}, embedded ClickHouse + PGlite`)
    await runGenerator({ url: `${url}/v1/activities`, mode: 'rate', rate: RATE / 2, concurrency: 8, durationMs: 3000, batchSize: BATCH })
    while ((await metrics(url)).pending > 0) await new Promise((r) => setTimeout(r, 250))
    const before = threadCpu(child.pid!)
    const acceptedBefore = (await metrics(url)).accepted
    const t0 = performance.now()
    const load = await runGenerator({ url: `${url}/v1/activities`, mode: 'rate', rate: RATE, concurrency: 32, durationMs: SECONDS * 1000, batchSize: BATCH })
    while ((await metrics(url)).pending > 0) await new Promise((r) => setTimeout(r, 250))
    const wall = (performance.now() - t0) / 1000
    const after = threadCpu(child.pid!)
    const m = await metrics(url)
    const events = m.accepted - acceptedBefore
    console.log(`accepted ${events.toLocaleString('en-US')} events (${Math.round(events / wall).toLocaleString('en-US')}/s until all were in both stores, ${wall.toFixed(1)} s); request p99 ${load.latencyMs.p99} ms; ClickHouse ${m.chExported}, audit trail ${m.pgExported}`)
    console.log('\nThe kernel\'s CPU per thread group over the loaded window, per event:')
    let total = 0
    for (const [group, ms] of after) {
      const us = ((ms - (before.get(group) ?? 0)) * 1000) / events
      total += us
      console.log(`  ${us.toFixed(1).padStart(7)} µs  ${group}`)
    }
    console.log(`  ${total.toFixed(1).padStart(7)} µs  the whole process`)

    const totalAccepted = m.accepted
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
    // Every thread's profile: the main thread's by stage, the worker's as the PostgreSQL engine.
    const files = readdirSync(profiles).filter((f) => f.endsWith('.cpuprofile')).sort()
    const stages = new Map<string, number>()
    for (const f of files) {
      const profile = JSON.parse(readFileSync(join(profiles, f), 'utf8')) as CpuProfile
      const thread = Number(f.split('.').at(-3))
      for (const [stage, ms] of chargeProfile(profile, thread === 0 ? undefined : 'PostgreSQL engine (PGlite worker thread)')) stages.set(stage, (stages.get(stage) ?? 0) + ms)
    }
    console.log(`\nThe CPU profiles (${files.length} threads, the whole run: start, warm-up, load, shutdown), per event accepted (${totalAccepted.toLocaleString('en-US')}):`)
    const sorted = [...stages].sort((a, b) => b[1] - a[1])
    for (const [stage, ms] of sorted) console.log(`  ${((ms * 1000) / totalAccepted).toFixed(1).padStart(7)} µs  ${stage}`)
    const main = files.find((f) => Number(f.split('.').at(-3)) === 0)
    if (main) {
      console.log(`\nThe main thread's heaviest functions by self time, per event accepted:`)
      for (const [frame, ms] of topFrames(JSON.parse(readFileSync(join(profiles, main), 'utf8')) as CpuProfile, 25)) console.log(`  ${((ms * 1000) / totalAccepted).toFixed(1).padStart(7)} µs  ${frame}`)
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
