/**
 * The collector as a real child process, for tests that kill it, overload it
 * or watch its memory.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

export interface CollectorProcess {
  child: ChildProcess
  url: string
  exited: Promise<number | null>
  /** Everything it printed so far. */
  output(): string
  /** Resident memory now, bytes. */
  rss(): number
  /** The most resident memory it has had (VmHWM), bytes. */
  peakRss(): number
}

export function writeConfig(dir: string, yaml: string): string {
  const file = join(dir, `collector-${Date.now()}.yaml`)
  writeFileSync(file, yaml)
  return file
}

export async function startCollectorProcess(configFile: string, env: Record<string, string> = {}): Promise<CollectorProcess> {
  const { child, url, exited, output } = await startNodeProcess(['bin/actline.js', 'start', '--config', configFile], env, 'collector')
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
  return { child, url, exited, rss: () => kb('VmRSS'), peakRss: () => kb('VmHWM'), output }
}

const running = new Set<ChildProcess>()

/**
 * Kill the children still running: for afterAll in every file that starts
 * them, so a test that failed before its own kill does not leave a collector
 * behind, holding memory and CPU through the rest of the run (vitest ends
 * its workers without an 'exit' event a hook could use).
 */
export async function killChildren(): Promise<void> {
  const dying = [...running].map((child) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  }))
  // Dead before the hook returns: a test's directory is removed after, and a collector still writing into it would fail that.
  await Promise.race([Promise.all(dying), new Promise((r) => setTimeout(r, 10_000))])
}

/** A node process that prints a JSON log line with its `"url"` once it listens. */
export async function startNodeProcess(
  args: string[],
  env: Record<string, string>,
  name: string,
): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null>; output(): string }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  running.add(child)
  child.once('exit', () => running.delete(child))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))))
  let log = ''
  child.stderr!.on('data', (c) => (log += c))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 120 s\n${log}`)), 120_000)
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log += `${line}\n`
      const m = /"url":"(http:[^"]+)"/.exec(line)
      if (m) {
        clearTimeout(timer)
        resolve(m[1]!)
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code} before listening\n${log.slice(-3000)}`))
    })
  })
  return { child, url, exited, output: () => log }
}

/** The example orders service (examples/orders) under the register hook, on a free port. */
export function startOrdersExample(env: Record<string, string>): ReturnType<typeof startNodeProcess> {
  return startNodeProcess(['--import', '@actline/instrumentation/register', 'examples/orders/app.js'], { PORT: '0', ...env }, 'orders example')
}

/** SIGTERM to a process started here, if still running, and its exit. */
export async function stopNodeProcess(p: { child: ChildProcess; exited: Promise<number | null> } | undefined): Promise<void> {
  if (p?.child.exitCode === null) p.child.kill('SIGTERM')
  await p?.exited
}

/** Rows not yet passed by each exporter, from /metrics. */
export async function backlog(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return [...text.matchAll(/^actline_exporter_queue_activities\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0)
}
