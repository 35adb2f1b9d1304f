/**
 * What the fault suite (test/faults, `npm run test:faults`) shares: a load
 * of uniquely identified events that remembers what each answer said, and
 * the check every case ends with: each acknowledged id once in each store
 * it was routed to.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import http from 'node:http'
import { expect } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import type { Config } from '../../collector/config.ts'
import { missingFromClickHouse, openStores } from './stores.ts'

export interface Load {
  acked: Set<string>
  /** Count of each HTTP status seen (0: no answer). */
  statuses: Map<number, number>
  /** Bodies of non-2xx answers, a few of each status. */
  samples: Map<number, string[]>
  stop(): Promise<void>
}

/** Posts 50-event NDJSON bodies with client ids on `connections` connections until stopped. */
export function startLoad(url: string, options: { connections?: number; action?: string; headers?: Record<string, string>; pauseMs?: number } = {}): Load {
  const { connections = 4, action = 'fault.test', pauseMs = 0 } = options
  const acked = new Set<string>()
  const statuses = new Map<number, number>()
  const samples = new Map<number, string[]>()
  let stop = false
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const post = (body: string) =>
    new Promise<{ status: number; text: string }>((resolve) => {
      const req = http.request(`${url}/v1/activities`, { method: 'POST', agent, headers: { 'content-type': 'application/x-ndjson', ...options.headers } }, (res) => {
        let text = ''
        res.on('data', (c) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
        res.on('error', () => resolve({ status: 0, text: '' }))
      })
      req.on('error', () => resolve({ status: 0, text: '' }))
      req.end(body)
    })
  const workers = Array.from({ length: connections }, async () => {
    while (!stop) {
      const ids = Array.from({ length: 50 }, () => uuidv7())
      const { status, text } = await post(ids.map((id) => JSON.stringify({ id, action, source: 'user', details: { pad: 'x'.repeat(200) } })).join('\n'))
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      if (status === 200) for (const id of ids) acked.add(id)
      else {
        const list = samples.get(status) ?? []
        if (list.length < 3) samples.set(status, [...list, text])
        await new Promise((r) => setTimeout(r, status === 0 ? 20 : 50))
      }
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs))
    }
  })
  return {
    acked,
    statuses,
    samples,
    async stop() {
      stop = true
      await Promise.all(workers)
      agent.destroy()
    },
  }
}

/** Every id of `ids` is in ClickHouse once and, where routed there (`postgres`), in audit_log once. */
export async function expectStoredOnce(config: Config, ids: readonly string[], { postgres = true }: { postgres?: boolean } = {}): Promise<void> {
  const stores = await openStores(config)
  try {
    expect(await missingFromClickHouse(stores.clickhouse, ids)).toBe(0)
    const rs = await stores.clickhouse.query({
      query: 'SELECT count() AS n, uniqExact(id) AS u FROM actline.activities WHERE id IN (SELECT id FROM default.acked)',
      format: 'JSONEachRow',
    })
    const [ch] = await rs.json<{ n: string; u: string }>()
    expect(Number(ch!.n)).toBe(ids.length)
    expect(Number(ch!.u)).toBe(ids.length)
    if (postgres) {
      const { rows } = await stores.postgres.query('SELECT count(*)::int AS n, count(DISTINCT id)::int AS u FROM audit_log WHERE id = ANY($1::uuid[])', [ids])
      expect(rows[0]).toEqual({ n: ids.length, u: ids.length })
    }
  } finally {
    await stores.close()
  }
}

/** JSON of a /metrics sample's value, by name and labels. */
export async function metric(url: string, name: string, labels = ''): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `))
  return line === undefined ? undefined : Number(line.split(' ').at(-1))
}

/**
 * A real small filesystem at `path`: a tmpfs of `size` (e.g. '8m'). Mounting
 * needs root (.ci/run is); without it, `mounted` is false and the caller
 * skips, saying why. `unmount` is for afterAll.
 */
export function mountTmpfs(path: string, size: string, what: string): { mounted: boolean; unmount(): void } {
  mkdirSync(path, { recursive: true })
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path], { stdio: 'pipe' })
  } catch (err) {
    console.warn(`${what} skipped: cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}); it needs root, and .ci/run runs it as root`)
    return { mounted: false, unmount() {} }
  }
  return { mounted: true, unmount: () => execFileSync('umount', ['-l', path]) }
}
