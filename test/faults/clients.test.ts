/**
 * Clients that misbehave: a key guesser is logged and stopped, a slow
 * client cannot hold a connection open, and the memory limiter never
 * wedges ingest: an idle collector over its limit admits again, and a
 * large read does not push ingest into 429s.
 */
import { connect } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import { eventually, post, tempDir } from '../helpers/stores.ts'
import { killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'
import { metric, startLoad } from '../helpers/faults.ts'

afterAll(killChildren)
const dir = tempDir('actline-clients-')
afterAll(() => dir.remove())
const INGEST_KEY = 'ingest-key-0123456789abcdef'
const READ_KEY = 'read-key-0123456789abcdefgh'
const keys = `auth: { keys: [ { name: app, key: ${INGEST_KEY}, scopes: [ingest] }, { name: grafana, key: ${READ_KEY}, scopes: [read] } ], max_failures: 10 }`

/** Open a raw connection, send `bytes`, and wait until the server closes it (or `maxMs`). Resolves with what it answered and when. */
function slowClient(url: string, bytes: string, maxMs: number): Promise<{ closedAfterMs: number; answer: string }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const started = Date.now()
    let answer = ''
    const socket = connect(Number(port), hostname, () => socket.write(bytes))
    socket.on('data', (d) => (answer += d))
    const timer = setTimeout(() => socket.destroy(), maxMs)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ closedAfterMs: Date.now() - started, answer })
    })
    socket.on('error', () => {})
  })
}

describe('misbehaving clients', () => {
  it('logs failed authentications without the key, and refuses an address that keeps guessing', async () => {
    const c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${dir.path}/auth\nserver: { port: 0 }\n${keys}\n`))
    try {
      const statuses: number[] = []
      for (let i = 0; i < 30; i++) {
        const res = await post(c.url, '{"action":"a.b","source":"user"}', { 'content-type': 'application/json', authorization: `Bearer wrong-guess-${i}-xxxxxxxxxxxxxxxx` })
        statuses.push(res.status)
        if (res.status === 429) expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
      }
      expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401))
      expect(statuses.slice(10)).toEqual(Array(20).fill(429))
      // The right key from that address is refused too until the window ends: guessing gets no faster.
      expect((await post(c.url, '{"action":"a.b","source":"user"}', { 'content-type': 'application/json', authorization: `Bearer ${INGEST_KEY}` })).status).toBe(429)
      expect(await metric(c.url, 'actline_auth_failures_total')).toBe(10)
      expect(await metric(c.url, 'actline_auth_blocked_total')).toBe(21)
    } finally {
      c.child.kill('SIGTERM')
      await c.exited
    }
    const log = c.output()
    expect(log.match(/"msg":"authentication failed: unknown key"/g)).toHaveLength(9)
    expect(log).toContain('authentication failed too often from this address')
    expect(log).not.toContain('wrong-guess')
  })

  it('closes a connection whose headers trickle in, and answers 408 to a body that never completes', async () => {
    const c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${dir.path}/slow\nserver: { port: 0, headers_timeout_ms: 2000, request_timeout_ms: 3000 }\n`))
    try {
      const headers = await slowClient(c.url, 'POST /v1/activities HTTP/1.1\r\nHost: 127.0.0.1\r\n', 15_000)
      expect(headers.closedAfterMs).toBeLessThan(5_000)
      const body = await slowClient(c.url, 'POST /v1/activities HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"acti', 15_000)
      expect(body.closedAfterMs).toBeLessThan(6_000)
      expect(body.answer).toMatch(/^HTTP\/1.1 408/)
      // Meanwhile the collector serves everyone else.
      expect((await post(c.url, JSON.stringify({ action: 'a.b', source: 'user' }))).status).toBe(200)
    } finally {
      c.child.kill('SIGTERM')
      await c.exited
    }
  })

  it('admits again once idle when resident memory stays over the limit, and says so in /readyz and /metrics while refusing', async () => {
    // A soft limit below what the idle collector holds: the old limiter refused for good.
    const c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${dir.path}/mem\nserver: { port: 0 }\npipeline: { memory_limiter: { limit_mib: 300, spike_limit_mib: 50, min_reclaim_interval_ms: 200 } }\n`))
    try {
      await eventually('an activity accepted while RSS is over the configured limit', async () => {
        const res = await post(c.url, JSON.stringify({ id: uuidv7(), action: 'mem.idle', source: 'user' }))
        return res.status === 200
      }, 20_000)
      expect(c.rss()).toBeGreaterThan(300 * 1024 * 1024)
      expect(await metric(c.url, 'actline_memory_limiter_rebases_total')).toBeGreaterThanOrEqual(1)
      const ready = await (await fetch(`${c.url}/readyz`)).json()
      expect(ready.details?.pipeline?.ingest ?? ready.pipeline.ingest).toMatch(/^ok$|^refusing: memory limit$/)
    } finally {
      c.child.kill('SIGTERM')
      await c.exited
    }
  })

  it('keeps taking ingest while a read key exports 30 MB of rows', async () => {
    const c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${dir.path}/read\nserver: { port: 0 }\n${keys}\n`))
    try {
      const auth = { authorization: `Bearer ${INGEST_KEY}` }
      const pad = 'x'.repeat(900)
      for (let i = 0; i < 30; i++) {
        const body = Array.from({ length: 1000 }, () => JSON.stringify({ action: 'mem.read', source: 'system', details: { pad } })).join('\n')
        // Loading as fast as this can meet backpressure: a client waits as told and sends again.
        for (;;) {
          const res = await post(c.url, body, { 'content-type': 'application/x-ndjson', ...auth })
          if (res.status === 200) break
          expect(res.status).toBe(429)
          await new Promise((r) => setTimeout(r, Number(res.headers.get('retry-after')) * 1000))
        }
      }
      await eventually('rows queryable', async () => (await metric(c.url, 'actline_exporter_queue_activities', 'exporter="clickhouse"')) === 0, 60_000)
      // A quiet moment after the bulk load, as any dashboard read comes some
      // time after it: the limiter gives back what the load left (idle reclaim).
      await new Promise((r) => setTimeout(r, 3_000))
      const load = startLoad(c.url, { connections: 2, headers: auth, pauseMs: 20 })
      const res = await fetch(`${c.url}/api/v1/export?format=ndjson&action=mem.read&from=now-1h`, { headers: { authorization: `Bearer ${READ_KEY}` } })
      const bytes = (await res.arrayBuffer()).byteLength
      await load.stop()
      expect(res.status).toBe(200)
      expect(bytes).toBeGreaterThan(30_000_000)
      expect(load.acked.size).toBeGreaterThan(0)
      expect([...load.statuses.keys()]).toEqual([200])
    } finally {
      c.child.kill('SIGTERM')
      await c.exited
    }
  })
})
