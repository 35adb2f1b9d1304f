/**
 * What a restart must not change: a client that re-sends a request whose
 * answer it lost to a collector crash gets its rows stored once (the
 * recent-ids window is rebuilt from the log's tail), and the embedded
 * PostgreSQL is reachable by the collector only: the process listens on
 * its HTTP port and on nothing else.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import { eventually, post, tempDir, testConfig } from '../helpers/stores.ts'
import { backlog, killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'
import { expectStoredOnce, metric } from '../helpers/faults.ts'

afterAll(killChildren)
const dir = tempDir('actline-restart-')
afterAll(() => dir.remove())
const configFile = writeConfig(dir.path, `data_dir: ${dir.path}\nserver: { port: 0 }\npipeline: { batch: { timeout_ms: 100 } }\n`)

/** Listening sockets the process holds: TCP ports (IPv4 and IPv6) and unix socket paths. */
function listeningSockets(pid: number): { tcp: number[]; unix: string[] } {
  const inodes = new Set(
    readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
        return m ? [m[1]!] : []
      } catch {
        return []
      }
    }),
  )
  const tcp = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) =>
    readFileSync(file, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[3] === '0A' && inodes.has(f[9]!)).map((f) => parseInt(f[1]!.split(':')[1]!, 16)),
  )
  // /proc/net/unix: Num RefCount Protocol Flags Type St Inode Path; St 01 with the listen flag (00010000) is listening.
  const unix = readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[3] === '00010000' && inodes.has(f[6]!)).map((f) => f[7] ?? '(unnamed)')
  return { tcp, unix }
}

describe('across a restart', () => {
  it('stores once the rows a client re-sends after the collector was killed before it could answer again', async () => {
    const ids = Array.from({ length: 200 }, () => uuidv7())
    const body = ids.map((id) => JSON.stringify({ id, action: 'restart.retry', source: 'user' })).join('\n')
    const first = await startCollectorProcess(configFile)
    expect((await post(first.url, body, { 'content-type': 'application/x-ndjson' })).status).toBe(200)
    first.child.kill('SIGKILL')
    await first.exited

    const second = await startCollectorProcess(configFile)
    // The client never saw that answer (say): it sends the same request again.
    expect((await post(second.url, body, { 'content-type': 'application/x-ndjson' })).status).toBe(200)
    expect(await metric(second.url, 'actline_receiver_duplicates_total')).toBe(200)
    await eventually('drained', async () => (await backlog(second.url)) === 0, 60_000)
    second.child.kill('SIGTERM')
    expect(await second.exited).toBe(0)
    await expectStoredOnce(testConfig(dir.path), ids)
  })

  it('serves the embedded PostgreSQL to nobody: the collector listens on its HTTP port and its read-only ClickHouse endpoint only', async () => {
    const c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${dir.path}\nserver: { port: 0, clickhouse_http: { port: 0 } }\n`))
    try {
      const port = Number(new URL(c.url).port)
      await eventually('the ClickHouse endpoint listening', async () => /"clickhouse_http":"http:/.test(c.output()), 30_000)
      const clickhousePort = Number(/"clickhouse_http":"http:\/\/[^"]+:(\d+)"/.exec(c.output())![1])
      // The audit trail works...
      expect((await fetch(`${c.url}/api/v1/audit?limit=1`)).status).toBe(200)
      // ...and there is no other socket another process could connect to.
      const sockets = listeningSockets(c.child.pid!)
      expect({ ...sockets, tcp: [...sockets.tcp].sort((a, b) => a - b) }).toEqual({ tcp: [port, clickhousePort].sort((a, b) => a - b), unix: [] })
    } finally {
      c.child.kill('SIGTERM')
      await c.exited
    }
  })
})
