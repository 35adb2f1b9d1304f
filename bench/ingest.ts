/**
 * npm run bench:ingest — the collector as a real process with embedded
 * stores, loaded by bench/load-generator.ts in another process.
 *
 * Run twice, side by side: the log synced (wal.durability fsync, the
 * default) and left to the OS (none), the same saturation phase in each.
 * The fsync run also has the rate phases:
 *   1. target rate: 100 requests/s of 500 events (50,000 events/s), open
 *      loop: request latency p50/p99 at the target load, then the time until
 *      every accepted row is queryable in both stores.
 *   2. latency at rates below the ceiling (10k and 20k events/s), open loop,
 *      with the event loop's own delay from /metrics.
 *   3. saturation: closed loop, as fast as 8 connections go: the ceiling,
 *      reported end to end (accepted events / time until all are stored).
 * Then SIGTERM, and the stores are opened to check every row is there.
 *
 * Options (env): BENCH_SECONDS (per phase, default 20), BENCH_RATE
 * (requests/s in phase 1, default 100), BENCH_CONCURRENCY (default 8).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openStores, tempDir, testConfig } from '../test/helpers/stores.ts'
import type { LoadResult } from './load-generator.ts'
import { metrics, runGenerator, startCollector, timeToStored } from './collector-process.ts'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
const RATE = Number(process.env.BENCH_RATE ?? 100)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8)
const BATCH = 500
const root = fileURLToPath(new URL('..', import.meta.url))

function log(msg: string) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`)
}

interface RunResult {
  durability: string
  idleRssMb: number
  peakRssMb: number
  saturation: { accepted_events_per_s: number; end_to_end_events_per_s: number; latency_ms: LoadResult['latencyMs']; statuses: LoadResult['statuses']; all_stored_after_ms: number }
  phases: Record<string, unknown>
  dir: ReturnType<typeof tempDir>
  final: Awaited<ReturnType<typeof metrics>>
  exitCode: number | null
}

/** One collector, fresh directory, given durability; the rate phases only when `full`. */
async function runCollector(durability: 'fsync' | 'none', full: boolean): Promise<RunResult> {
  const dir = tempDir(`actline-bench-${durability}-`)
  const configFile = join(dir.path, 'bench.yaml')
  writeFileSync(configFile, `data_dir: ${dir.path}\nserver: { port: 0, log_level: info }\nwal: { durability: ${durability} }\n`)
  log(`[${durability}] starting collector (embedded ClickHouse + PGlite)...`)
  const collector = await startCollector(configFile)
  await new Promise((r) => setTimeout(r, 1000))
  const idleRss = collector.rss()
  log(`[${durability}] collector at ${collector.url}, idle RSS ${Math.round(idleRss / 2 ** 20)} MB`)

  log(`[${durability}] warm-up: 3 s at half the target rate`)
  await runGenerator({ url: collector.url, mode: 'rate', rate: RATE / 2, concurrency: 64, durationMs: 3_000, batchSize: BATCH })
  await timeToStored(collector.url)

  const phases: Record<string, unknown> = {}
  if (full) {
    log(`[${durability}] phase 1: ${RATE} requests/s x ${BATCH} events (${RATE * BATCH} events/s) for ${SECONDS} s`)
    const rate = await runGenerator({ url: collector.url, mode: 'rate', rate: RATE, concurrency: 64, durationMs: SECONDS * 1000, batchSize: BATCH })
    const drain = await timeToStored(collector.url)
    phases.target_rate = {
      offered_events_per_s: RATE * BATCH,
      accepted_events_per_s: Math.round(rate.accepted / (rate.elapsedMs / 1000)),
      latency_ms: rate.latencyMs,
      statuses: rate.statuses,
      all_stored_after_ms: drain,
    }
    log(`  ${JSON.stringify(phases.target_rate)}`)
    for (const rps of [20, 40]) {
      log(`[${durability}] phase 2: ${rps * BATCH} events/s for ${SECONDS} s (latency below the ceiling)`)
      await metrics(collector.url) // resets the loop-delay window
      const r = await runGenerator({ url: collector.url, mode: 'rate', rate: rps, concurrency: 64, durationMs: SECONDS * 1000, batchSize: BATCH })
      const m = await metrics(collector.url)
      await timeToStored(collector.url)
      phases[`below_ceiling_${rps * BATCH}_events_per_s`] = { accepted_events_per_s: Math.round(r.accepted / (r.elapsedMs / 1000)), latency_ms: r.latencyMs, statuses: r.statuses, event_loop_delay_ms: { p99: m.loopDelayP99Ms, max: m.loopDelayMaxMs } }
      log(`  ${JSON.stringify(phases[`below_ceiling_${rps * BATCH}_events_per_s`])}`)
    }
  }

  log(`[${durability}] saturation: ${CONCURRENCY} connections for ${SECONDS} s`)
  const max = await runGenerator({ url: collector.url, mode: 'max', rate: 0, concurrency: CONCURRENCY, durationMs: SECONDS * 1000, batchSize: BATCH })
  const maxDrainMs = await timeToStored(collector.url)
  const saturation = {
    accepted_events_per_s: Math.round(max.accepted / (max.elapsedMs / 1000)),
    end_to_end_events_per_s: Math.round(max.accepted / ((max.elapsedMs + maxDrainMs) / 1000)),
    latency_ms: max.latencyMs,
    statuses: max.statuses,
    all_stored_after_ms: maxDrainMs,
  }
  log(`  ${JSON.stringify(saturation)}`)
  const final = await metrics(collector.url)
  const peakRss = collector.peakRss()
  const exited = new Promise<number | null>((r) => collector.child.once('exit', r))
  collector.child.kill('SIGTERM')
  const exitCode = await exited
  return { durability, idleRssMb: Math.round(idleRss / 2 ** 20), peakRssMb: Math.round(peakRss / 2 ** 20), saturation, phases, dir, final, exitCode }
}

async function main() {
  log(`machine: ${cpus().length} x ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`)
  // Side by side in one run: the same saturation phase with the log synced
  // (fsync, the default) and left to the OS (none). The stores of the last
  // run are opened afterwards to check every accepted row is there.
  const none = await runCollector('none', false)
  none.dir.remove()
  const fsync = await runCollector('fsync', true)

  log('checking the stores of the fsync run hold every accepted row...')
  const stores = await openStores(testConfig(fsync.dir.path))
  const chRows = Number((await (await stores.clickhouse.query({ query: 'SELECT count() AS n FROM actline.activities', format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n)
  const pgRows = Number((await stores.postgres.query('SELECT count(*)::bigint AS n FROM audit_log')).rows[0].n)
  await stores.close()
  fsync.dir.remove()

  const result = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    fsync: { ...fsync.phases, saturation: fsync.saturation, idle_rss_mb: fsync.idleRssMb, peak_rss_mb: fsync.peakRssMb },
    none: { saturation: none.saturation, idle_rss_mb: none.idleRssMb, peak_rss_mb: none.peakRssMb },
    fsync_vs_none: {
      accepted: Number((fsync.saturation.accepted_events_per_s / none.saturation.accepted_events_per_s).toFixed(3)),
      end_to_end: Number((fsync.saturation.end_to_end_events_per_s / none.saturation.end_to_end_events_per_s).toFixed(3)),
    },
    shutdown_exit_codes: { none: none.exitCode, fsync: fsync.exitCode },
    verify: { accepted_total: fsync.final.accepted, clickhouse_rows: chRows, clickhouse_exported: fsync.final.chExported, postgres_rows: pgRows, postgres_exported: fsync.final.pgExported },
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true })
  writeFileSync(join(root, 'bench/results/ingest-latest.json'), JSON.stringify(result, null, 2) + '\n')
  console.log(JSON.stringify(result, null, 2))
  const ok = chRows === fsync.final.accepted && pgRows === fsync.final.pgExported && fsync.exitCode === 0 && none.exitCode === 0
  if (!ok) {
    console.error('FAILED: the stores do not hold every accepted row, or a shutdown failed (see verify)')
    process.exit(1)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
