/**
 * The collector as a real process for the benchmarks, and the load
 * generator (bench/load-generator.ts) as another: what bench:ingest and
 * the dashboard refresh of bench:query both drive.
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { LoadResult, Options } from './load-generator.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const TICK_MS = 1000 / 100 // USER_HZ: /proc counts CPU in 10 ms ticks

/**
 * `nodeArgs` go before the script: `--cpu-prof` and the like. `cpus` pins it
 * (taskset -c): on its own core, the collector stands in for another host.
 */
export async function startCollector(configFile: string, nodeArgs: readonly string[] = [], cpus?: string) {
  const args = [...nodeArgs, join(root, 'bin/actline.js'), 'start', '--config', configFile]
  const child = cpus
    ? spawn('taskset', ['-c', cpus, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /"url":"(http:[^"]+)"/.exec(line)
      if (m) resolve(m[1]!)
      else if (/"level":(40|50|60)/.test(line)) process.stderr.write(`  collector: ${line}\n`)
    })
    child.once('exit', (code) => reject(new Error(`collector exited with ${code} before listening`)))
  })
  // Peak RSS from the kernel's own high-water mark, plus our samples.
  const status = () => readFileSync(`/proc/${child.pid}/status`, 'utf8')
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status())?.[1] ?? NaN) * 1024
  return { child, url, peakRss: () => kb('VmHWM'), rss: () => kb('VmRSS') }
}

export async function metrics(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text()
  const get = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN)
  /** Activities in the log each exporter has not passed yet. */
  const queued = {
    clickhouse: get(/actline_exporter_queue_activities\{exporter="clickhouse"\} (\d+)/),
    postgres: get(/actline_exporter_queue_activities\{exporter="postgres"\} (\d+)/),
  }
  return {
    loopDelayP99Ms: Math.round(get(/actline_event_loop_delay_seconds\{quantile="0.99"\} ([\d.e-]+)/) * 1000),
    loopDelayMaxMs: Math.round(get(/actline_event_loop_delay_seconds\{quantile="1"\} ([\d.e-]+)/) * 1000),
    accepted: get(/actline_receiver_activities_total\{outcome="accepted"\} (\d+)/),
    queued,
    pending: queued.clickhouse + queued.postgres,
    heap: { used: get(/^nodejs_heap_size_used_bytes (\d+)/m), total: get(/^nodejs_heap_size_total_bytes (\d+)/m), external: get(/^nodejs_external_memory_bytes (\d+)/m) },
    chExported: get(/actline_exporter_activities_total\{exporter="clickhouse",outcome="exported"\} (\d+)/),
    pgExported: get(/actline_exporter_activities_total\{exporter="postgres",outcome="exported"\} (\d+)/),
  }
}

export function runGenerator(options: Options): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench/load-generator.ts'), JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`load generator exited with ${code}`))))
  })
}

/** Milliseconds from now until no row is queued or in flight, i.e. all are stored. */
export async function timeToStored(url: string): Promise<number> {
  const t0 = performance.now()
  while ((await metrics(url)).pending > 0) await new Promise((r) => setTimeout(r, 10))
  return Math.round(performance.now() - t0)
}

/** CPU ms of each thread of `pid`, by group: main, the engine's named threads, Node's others. */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    } catch {
      continue // ended meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ms = (Number(fields[11]) + Number(fields[12])) * TICK_MS // utime + stime
    const group = Number(tid) === pid ? 'main thread (JS, and what runs on it)' : comm === 'node' ? "Node's other threads (libuv pool: writes, fsync, zlib; GC helpers; PGlite's worker)" : 'ClickHouse engine threads'
    out.set(group, (out.get(group) ?? 0) + ms)
  }
  return out
}
