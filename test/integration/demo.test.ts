/**
 * `actline demo` as a user runs it: a real process in a directory of its
 * own, its history checked through the query API and the ClickHouse
 * endpoint it prints, live traffic arriving, Ctrl-C leaving nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/stores.ts'

const BIN = join(import.meta.dirname, '../../bin/actline.js')
const DAY = 86_400_000

interface Demo {
  child: ChildProcess
  lines: string[]
  exited: Promise<number | null>
  /** Resolves with the first line matching `re`. */
  line(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>
}

function demo(args: string[], cwd: string): Demo {
  const child = spawn(process.execPath, [BIN, 'demo', '--port', '0', '--clickhouse-port', '0', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  const waiting: { re: RegExp; resolve(m: RegExpExecArray): void }[] = []
  const onLine = (line: string) => {
    for (const part of line.split('\r')) {
      lines.push(part)
      for (const w of [...waiting]) {
        const m = w.re.exec(part)
        if (m) {
          waiting.splice(waiting.indexOf(w), 1)
          w.resolve(m)
        }
      }
    }
  }
  createInterface({ input: child.stdout! }).on('line', onLine)
  createInterface({ input: child.stderr! }).on('line', onLine)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return {
    child,
    lines,
    exited,
    line: (re, timeoutMs = 120_000) =>
      new Promise((resolve, reject) => {
        const seen = lines.map((l) => re.exec(l)).find(Boolean)
        if (seen) return resolve(seen)
        const timer = setTimeout(() => reject(new Error(`no line like ${re} in ${timeoutMs} ms:\n${lines.join('\n')}`)), timeoutMs)
        waiting.push({ re, resolve: (m) => (clearTimeout(timer), resolve(m)) })
        void exited.then((code) => reject(new Error(`demo exited with ${code}:\n${lines.join('\n')}`)))
      }),
  }
}

describe('actline demo', () => {
  const cwd = tempDir('actline-demo-cwd-')
  afterAll(() => cwd.remove())

  it('backfills history with progress, goes live, prints what to open, and leaves ./data alone', async () => {
    const d = demo(['--days', '14', '--per-day', '600', '--rate', '20'], cwd.path)
    const [, url, dataDir] = await d.line(/collector on (http:\S+), data in (\S+)/)
    expect(dataDir!.startsWith(cwd.path)).toBe(false)
    const [, backfilled] = await d.line(/^backfill: ([\d,]+) activities over 14 days/)
    const [, clickhouse] = await d.line(/ClickHouse\s+(http:\S+)/)
    await d.line(/^live traffic/)
    expect(d.lines.filter((l) => /^backfill \[#+\.*\] day \d+\/14/.test(l)).length).toBeGreaterThanOrEqual(14)

    // The whole history is in the store, with what the dashboards show: failures, actors, tenants, db activities.
    const trends = await (await fetch(`${url}/api/v1/trends?interval=day&from=${Date.now() - 15 * DAY}&metrics=count,failures,unique_actors`)).json()
    expect(trends.totals.count).toBeGreaterThanOrEqual(Number(backfilled!.replace(/,/g, '')))
    expect(trends.totals.failures).toBeGreaterThan(0)
    expect(trends.totals.unique_actors).toBeGreaterThan(50)
    // Whole days only: the first and last of the history are partial.
    const byDay = trends.buckets.slice(2, -1).map((b: any) => b.count)
    expect(Math.max(...byDay) / Math.min(...byDay), 'weekends are quieter').toBeGreaterThan(1.4)
    const sources = await (await fetch(`${url}/api/v1/breakdown?dimension=source&from=${Date.now() - 15 * DAY}`)).json()
    expect(sources.items.map((i: any) => i.key).sort()).toEqual(['database', 'integration', 'scheduled', 'system', 'user'])
    const tenants = await (await fetch(`${clickhouse}/?query=${encodeURIComponent('SELECT uniqExact(tenant_id) FROM actline.activities_by_day')}`)).text()
    expect(Number(tenants)).toBeGreaterThanOrEqual(5)

    // Live traffic: new activities within a few seconds.
    const newest = async () => Date.parse((await (await fetch(`${url}/api/v1/activities?limit=1`)).json()).data[0].timestamp)
    const before = Date.now()
    await new Promise((r) => setTimeout(r, 3000))
    expect(await newest()).toBeGreaterThan(before - 1500)

    d.child.kill('SIGINT')
    expect(await d.exited).toBe(0)
    expect(existsSync(dataDir!), 'its temporary directory is gone').toBe(false)
    expect(readdirSync(cwd.path)).toEqual([])
  }, 180_000)

  it('keeps a --data-dir and does not send its history twice', async () => {
    const dir = join(cwd.path, 'demo-data')
    for (const run of [1, 2]) {
      const d = demo(['--data-dir', dir, '--days', '2', '--per-day', '300', '--rate', '0'], cwd.path)
      if (run === 2) await d.line(/history already in/)
      expect(await d.exited).toBe(0)
    }
    expect(existsSync(join(dir, '.demo-backfilled'))).toBe(true)
  }, 120_000)

  it('refuses a bad option in one line', async () => {
    const d = demo(['--days', 'lots'], cwd.path)
    expect(await d.exited).toBe(2)
    expect(d.lines.join('\n')).toMatch(/^demo: --days must be a whole number from 0 to 3650, got 'lots'$/m)
  })
})
