/**
 * `npm run bench:scale`: how the cost per event grows with its shape (issue
 * 16, part 7): attributes per event (0, 10, 100), event size (200 B to 8 KB)
 * and the share of events the audit trail takes (10% to 100%). Each point is
 * a collector process of its own (embedded ClickHouse + PGlite, `wal.durability:
 * fsync`), loaded below its ceiling at BENCH_RATE events/s for BENCH_SECONDS
 * by bench/load-generator.ts with the shape changed on bench:ingest's mix;
 * the kernel's count of the process's CPU (/proc, every thread) over the
 * loaded window until every accepted event is in both stores, per event,
 * with the main thread's share beside it.
 *
 *   npm run bench:scale       # BENCH_RATE=5000 BENCH_SECONDS=15; BENCH_POINTS=mix,attrs-0,... to choose
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../test/helpers/stores.ts'
import type { Shape } from './load-generator.ts'
import { metrics, runGenerator, startCollector, threadCpu, timeToStored } from './collector-process.ts'

const RATE = Number(process.env.BENCH_RATE ?? 5000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15)
const BATCH = 500

const POINTS: Record<string, { axis: string; label: string; shape: Shape }> = {
  mix: { axis: "bench:ingest's mix", label: '2 attributes, ~350 B, ~45% audited', shape: {} },
  'attrs-0': { axis: 'attributes per event', label: '0', shape: { attributes: 0 } },
  'attrs-10': { axis: 'attributes per event', label: '10', shape: { attributes: 10 } },
  'attrs-100': { axis: 'attributes per event', label: '100', shape: { attributes: 100 } },
  'bytes-200': { axis: 'event size', label: '~200 B', shape: { eventBytes: 200 } },
  'bytes-1k': { axis: 'event size', label: '1 KB', shape: { eventBytes: 1024 } },
  'bytes-4k': { axis: 'event size', label: '4 KB', shape: { eventBytes: 4096 } },
  'bytes-8k': { axis: 'event size', label: '8 KB', shape: { eventBytes: 8192 } },
  'audit-10': { axis: 'share audited', label: '10%', shape: { auditShare: 0.1 } },
  'audit-50': { axis: 'share audited', label: '50%', shape: { auditShare: 0.5 } },
  'audit-100': { axis: 'share audited', label: '100%', shape: { auditShare: 1 } },
}

async function point(name: string, shape: Shape) {
  const dir = tempDir(`actline-bench-scale-${name}-`)
  const configFile = join(dir.path, 'collector.yaml')
  writeFileSync(configFile, `data_dir: ${dir.path}\nserver: { port: 0, log_level: warn, clickhouse_http: { enabled: false } }\nwal: { durability: fsync }\n`)
  const c = await startCollector(configFile)
  try {
    const url = `${c.url}/v1/activities`
    await runGenerator({ url, mode: 'rate', rate: RATE / BATCH / 2, concurrency: 32, durationMs: 3000, batchSize: BATCH, shape })
    await timeToStored(c.url)
    const before = threadCpu(c.child.pid!)
    const m0 = await metrics(c.url)
    const load = await runGenerator({ url, mode: 'rate', rate: RATE / BATCH, concurrency: 32, durationMs: SECONDS * 1000, batchSize: BATCH, shape })
    await timeToStored(c.url)
    const after = threadCpu(c.child.pid!)
    const m1 = await metrics(c.url)
    const events = m1.accepted - m0.accepted
    const audited = m1.pgExported - m0.pgExported
    let total = 0
    let main = 0
    for (const [group, ms] of after) {
      const used = ms - (before.get(group) ?? 0)
      total += used
      if (group.startsWith('main')) main += used
    }
    return { events, audited, total: (total * 1000) / events, main: (main * 1000) / events, p99: load.latencyMs.p99 }
  } finally {
    c.child.kill('SIGTERM')
    await new Promise((r) => c.child.once('exit', r))
    dir.remove()
  }
}

const chosen = process.env.BENCH_POINTS ? process.env.BENCH_POINTS.split(',') : Object.keys(POINTS)
console.log(`bench:scale: ${RATE.toLocaleString('en-US')} events/s for ${SECONDS} s per point, embedded ClickHouse + PGlite, wal fsync`)
const rows: string[] = []
for (const name of chosen) {
  const p = POINTS[name]
  if (!p) throw new Error(`unknown point ${name}: one of ${Object.keys(POINTS).join(', ')}`)
  const r = await point(name, p.shape)
  const row = `| ${p.axis} | ${p.label} | ${((100 * r.audited) / r.events).toFixed(0)}% | ${r.total.toFixed(1)} | ${r.main.toFixed(1)} | ${r.p99} ms |`
  process.stderr.write(`  ${name}: ${r.events.toLocaleString('en-US')} events, ${row}\n`)
  rows.push(row)
}
console.log('\n| axis | point | audited | process µs/event | main thread µs/event | request p99 |\n| --- | --- | ---: | ---: | ---: | ---: |')
for (const r of rows) console.log(r)
