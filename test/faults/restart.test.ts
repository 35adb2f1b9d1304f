/**
 * What a restart must not change: a client that re-sends a request whose
 * answer it lost to a collector crash gets its rows stored once (the
 * recent-ids window is rebuilt from the log's tail), and the embedded
 * PostgreSQL is reachable by the collector only: the process listens on
 * its HTTP port and on nothing else. And a batch the embedded ClickHouse
 * lost with its deduplication record kept (the engine writes the record,
 * then commits the part: a kill -9 between the two) is stored on the next
 * start, not dropped as a repeat.
 */
import { readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import { eventually, post, tempDir, testConfig } from '../helpers/stores.ts'
import { backlog, killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'
import { expectStoredOnce, metric } from '../helpers/faults.ts'
import { openCursorLedger, readLedgerFile } from '../../collector/wal/cursor-ledger.ts'

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

  it('stores a batch the engine lost after recording its deduplication token, when it was in flight at the crash', async () => {
    const lost = tempDir('actline-lost-part-')
    try {
      const config = writeConfig(lost.path, `data_dir: ${lost.path}\nserver: { port: 0 }\npipeline: { batch: { timeout_ms: 100 } }\n`)
      const ids = Array.from({ length: 300 }, () => uuidv7())
      const first = await startCollectorProcess(config)
      expect((await post(first.url, ids.map((id) => JSON.stringify({ id, action: 'restart.lost_part', source: 'user' })).join('\n'), { 'content-type': 'application/x-ndjson' })).status).toBe(200)
      await eventually('drained', async () => (await backlog(first.url)) === 0, 60_000)
      first.child.kill('SIGTERM')
      expect(await first.exited).toBe(0)

      // What the kill left, made on disk: the table's parts gone, the
      // deduplication log (one line per insert, with its token) kept, and
      // the batch's range still in flight in ClickHouse's cursor.
      const table = join(lost.path, 'clickhouse', 'data', 'actline', 'activities')
      const parts = readdirSync(table).filter((f) => /^\d+_\d+_\d+_\d+$/.test(f))
      expect(parts.length).toBeGreaterThan(0)
      for (const part of parts) rmSync(join(table, part), { recursive: true })
      const dedup = readdirSync(join(table, 'deduplication_logs')).map((f) => readFileSync(join(table, 'deduplication_logs', f), 'utf8')).join('')
      expect(dedup.trim().split('\n').length).toBeGreaterThanOrEqual(parts.length)
      const wal = join(lost.path, 'wal')
      const { committed } = (await readLedgerFile(wal, 'clickhouse'))!
      const ledger = await openCursorLedger(wal, 'clickhouse', true)
      await ledger.write({ committed: 0, inflight: { start: 0, end: committed } })
      await ledger.close()

      const second = await startCollectorProcess(config)
      await eventually('drained again', async () => (await backlog(second.url)) === 0, 60_000)
      second.child.kill('SIGTERM')
      expect(await second.exited).toBe(0)
      expect(second.output()).toContain('sending again the batch in flight')
      await expectStoredOnce(testConfig(lost.path), ids)
    } finally {
      lost.remove()
    }
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
