/**
 * `npm run bench:memory`: where the collector's resident memory goes, idle
 * and at its peak under saturation (issue 16, part 5). The collector runs as
 * a real process with both embedded engines; the kernel's page accounting
 * (/proc/PID/smaps) is grouped by what each mapping is:
 * - libchdb.so: the engine's code and relocated data, file-backed;
 * - WebAssembly memories: the accessible start of an 8 GiB reservation
 *   whose rest is PROT_NONE (how V8 reserves a wasm memory): PGlite's
 *   PostgreSQL heap, which never shrinks;
 * - the rest of the anonymous memory: V8's heaps (every isolate: the main
 *   one and PGlite's worker), ClickHouse's jemalloc arenas, Node's buffers;
 * - node and the other shared libraries.
 * Beside that, the V8 heap from /metrics and ClickHouse's own accounting
 * (MemoryTracking, its caches) through the collector's
 * ClickHouse endpoint. Peak: the sample with the highest RSS, every 250 ms,
 * while bench:ingest's generator saturates the collector for BENCH_SECONDS.
 *
 *   npm run bench:memory      # BENCH_SECONDS=20 BENCH_IDLE_SECONDS=30; BENCH_CONFIG='...' adds YAML for an A/B
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../test/helpers/stores.ts'
import { metrics, runGenerator, startCollector, timeToStored } from './collector-process.ts'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
const EXTRA = process.env.BENCH_CONFIG ? `${process.env.BENCH_CONFIG}\n` : ''
const IDLE = Number(process.env.BENCH_IDLE_SECONDS ?? 30)
const CH_PORT = 18123
const MB = 2 ** 20

type Groups = Record<string, number>

interface Vma {
  start: number
  end: number
  perms: string
  path: string
  rss: number
}

/** RSS bytes by what each mapping is. */
function groups(pid: number): Groups {
  const vmas: Vma[] = []
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head) vmas.push({ start: parseInt(head[1]!, 16), end: parseInt(head[2]!, 16), perms: head[3]!, path: head[4]!, rss: 0 })
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss) vmas.at(-1)!.rss += Number(rss[1]) * 1024
  }
  // A wasm memory is the accessible start of a reservation whose rest (>= 4 GiB) is PROT_NONE.
  const wasm = new Set<Vma>()
  for (let i = 0; i < vmas.length; i++) {
    const v = vmas[i]!
    if (v.perms.startsWith('---') && v.end - v.start >= 4 * 2 ** 30) {
      for (let j = i - 1; j >= 0 && vmas[j]!.end === vmas[j + 1]!.start && vmas[j]!.path === '' && !vmas[j]!.perms.startsWith('---'); j--) wasm.add(vmas[j]!)
    }
  }
  const out: Groups = {}
  for (const v of vmas) {
    const name = v.path.includes('libchdb') ? 'libchdb.so (engine code and data, file-backed)'
      : v.path.endsWith('/node') ? 'node binary'
      : v.path.startsWith('/') ? 'other files (shared libraries, ICU)'
      : v.path === '[stack]' ? 'stacks'
      : wasm.has(v) ? "WebAssembly memories (PGlite's PostgreSQL heap)"
      : "other anonymous: V8 heaps (main and PGlite's worker), ClickHouse's jemalloc, buffers"
    out[name] = (out[name] ?? 0) + v.rss
  }
  return out
}

const total = (g: Groups) => Object.values(g).reduce((a, b) => a + b, 0)

const heap = async (url: string) => (await metrics(url)).heap

async function engine(): Promise<Record<string, number>> {
  // chDB has no system.asynchronous_metrics (jemalloc's figures); MemoryTracking is what the engine counts as its own.
  const query = "SELECT metric, value FROM system.metrics WHERE metric IN ('MemoryTracking', 'MarkCacheBytes', 'UncompressedCacheBytes', 'PrimaryIndexCacheBytes') FORMAT JSONEachRow"
  const res = await fetch(`http://127.0.0.1:${CH_PORT}/?query=${encodeURIComponent(query)}`)
  if (!res.ok) return { error: res.status }
  return Object.fromEntries((await res.text()).trim().split('\n').filter(Boolean).map((l) => { const r = JSON.parse(l) as { metric: string; value: number }; return [r.metric, r.value] }))
}

function print(title: string, g: Groups, h: { used: number; total: number; external: number }, e: Record<string, number>) {
  console.log(`\n${title}: ${Math.round(total(g) / MB)} MB resident`)
  for (const [k, v] of Object.entries(g).sort((a, b) => b[1] - a[1])) console.log(`  ${String(Math.round(v / MB)).padStart(5)} MB  ${k}`)
  console.log(`  of which: V8 heap (main isolate) ${Math.round(h.used / MB)} MB used of ${Math.round(h.total / MB)} MB committed, external (buffers) ${Math.round(h.external / MB)} MB`)
  console.log(`  ClickHouse's accounting: ${Object.entries(e).map(([k, v]) => `${k} ${Math.round(v / MB)} MB`).join(', ')}`)
}

async function main() {
  const dir = tempDir('actline-bench-memory-')
  const configFile = join(dir.path, 'collector.yaml')
  writeFileSync(configFile, `data_dir: ${dir.path}\nserver: { port: 0, log_level: warn, clickhouse_http: { port: ${CH_PORT} } }\nwal: { durability: fsync }\n${EXTRA}`)
  const c = await startCollector(configFile)
  const pid = c.child.pid!
  try {
    console.log(`bench:memory: embedded ClickHouse + PGlite${EXTRA ? `, with ${EXTRA.trim()}` : ''}`)
    await new Promise((r) => setTimeout(r, 5000))
    print('idle, 5 s after start', groups(pid), await heap(c.url), await engine())
    let peak = { g: groups(pid), h: await heap(c.url) }
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const g = groups(pid)
        if (total(g) > total(peak.g)) peak = { g, h: await heap(c.url) }
        await new Promise((r) => setTimeout(r, 250))
      }
    })()
    const load = await runGenerator({ url: c.url, mode: 'max', rate: 0, concurrency: 8, durationMs: SECONDS * 1000, batchSize: 500 })
    await timeToStored(c.url)
    sampling = false
    await sampler
    print(`peak under saturation (${Math.round(load.accepted / (load.elapsedMs / 1000)).toLocaleString('en-US')} events/s accepted)`, peak.g, peak.h, await engine())
    await new Promise((r) => setTimeout(r, IDLE * 1000))
    print(`idle again, ${IDLE} s after the load was stored`, groups(pid), await heap(c.url), await engine())
    console.log(`\nkernel high-water mark (VmHWM): ${Math.round(c.peakRss() / MB)} MB`)
  } finally {
    c.child.kill('SIGTERM')
    await new Promise((r) => c.child.once('exit', r))
    dir.remove()
  }
}

await main()
