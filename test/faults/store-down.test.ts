/**
 * A store that is down when the collector starts: the collector starts
 * anyway, takes ingest into its log, names the store in /readyz, and
 * drains the backlog into it once it appears. With ClickHouse down, the log
 * keeps everything, so this file also damages a sealed segment of that log
 * while the collector is stopped: the damaged record is skipped and
 * dead-lettered with its bytes, and every other row still arrives.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import { eventually, openStores, post, tempDir, testConfig } from '../helpers/stores.ts'
import { startPostgresTarget } from '../helpers/postgres-target.ts'
import { backlog, killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'
import { closedPort } from '../helpers/ports.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { expectStoredOnce, metric } from '../helpers/faults.ts'

afterAll(killChildren)
const dir = tempDir('actline-down-')
afterAll(() => dir.remove())

async function postBatches(url: string, batches: number, size: number): Promise<string[]> {
  const ids: string[] = []
  for (let b = 0; b < batches; b++) {
    const batch = Array.from({ length: size }, () => uuidv7())
    const res = await post(url, batch.map((id) => JSON.stringify({ id, action: 'down.test', source: 'user' })).join('\n'), { 'content-type': 'application/x-ndjson' })
    expect(res.status).toBe(200)
    ids.push(...batch)
  }
  return ids
}

describe('a store down at start', () => {
  it('PostgreSQL: ingest goes on into the log, /readyz names it, and the backlog drains when it appears', async () => {
    const target = await startPostgresTarget(`${dir.path}/pg-target`)
    const port = await closedPort()
    const viaProxy = new URL(target.url)
    viaProxy.port = String(port)
    const data = `${dir.path}/pg-down`
    const c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${data}\nserver: { port: 0 }\npipeline: { retry: { initial_interval_ms: 50, max_interval_ms: 300 }, batch: { timeout_ms: 100 } }\n`), {
      ACTLINE_POSTGRES_URL: viaProxy.toString(),
    })
    const proxy = { close: async () => {} }
    try {
      const ids = await postBatches(c.url, 5, 100)
      const ready = await (await fetch(`${c.url}/readyz`)).json()
      expect(ready.details.stores.postgres).toMatch(new RegExp(`not connected: .*ECONNREFUSED 127.0.0.1:${port}`))
      expect(await metric(c.url, 'actline_exporter_queue_activities', 'exporter="postgres"')).toBe(500)

      Object.assign(proxy, await startTcpProxy(target.url.hostname, Number(target.url.port), port))
      await eventually('backlog drained into PostgreSQL', async () => (await backlog(c.url)) === 0, 60_000)
      expect((await fetch(`${c.url}/readyz`)).status).toBe(200)
      // Read back through the collector: PGlite's socket server takes one connection, the collector's.
      const page = await (await fetch(`${c.url}/api/v1/audit?action=down.test&limit=1000`)).json()
      expect(page.data.map((r: { id: string }) => r.id).sort()).toEqual([...ids].sort())
      c.child.kill('SIGTERM')
      expect(await c.exited).toBe(0)
      await expectStoredOnce(testConfig(data, { exporters: { postgres: { enabled: false } } }), ids, { postgres: false })
    } finally {
      c.child.kill('SIGKILL')
      await proxy.close()
      await target.stop()
    }
  })

  it('ClickHouse: ingest and PostgreSQL go on; a damaged sealed segment is skipped and dead-lettered when the store takes the backlog', async () => {
    const data = `${dir.path}/ch-down`
    const configFile = writeConfig(dir.path, `data_dir: ${data}\nserver: { port: 0 }\nwal: { segment_bytes: 8192 }\npipeline: { batch: { timeout_ms: 100 }, retry: { initial_interval_ms: 50, max_interval_ms: 300 } }\n`)
    const port = await closedPort()
    const down = await startCollectorProcess(configFile, { ACTLINE_CLICKHOUSE_URL: `http://127.0.0.1:${port}` })
    const ids = await postBatches(down.url, 20, 10)
    const ready = await (await fetch(`${down.url}/readyz`)).json()
    expect(ready.details.stores.clickhouse).toMatch(/not connected: .*ECONNREFUSED/)
    expect(ready.details.stores.postgres).toBe('ok')
    // A query of the store that is not there is a 503 to retry, not a 500.
    const query = await fetch(`${down.url}/api/v1/activities`)
    expect(query.status).toBe(503)
    expect(await query.json()).toMatchObject({ error: 'ACT_ERR_STORAGE_UNAVAILABLE', details: { store: 'clickhouse' } })
    await eventually('PostgreSQL has its rows', async () => (await metric(down.url, 'actline_exporter_queue_activities', 'exporter="postgres"')) === 0)
    down.child.kill('SIGTERM')
    expect(await down.exited).toBe(0)

    // Flip a byte inside the first record of the first, sealed, segment.
    const walDir = join(data, 'wal')
    const first = readdirSync(walDir).filter((f) => f.endsWith('.wal')).sort()[0]!
    const bytes = readFileSync(join(walDir, first))
    const damaged = (JSON.parse(bytes.subarray(12, 12 + bytes.readUInt32LE(0)).toString()) as { id: string }[]).map((a) => a.id)
    bytes[40]! ^= 0x55
    writeFileSync(join(walDir, first), bytes)

    // ClickHouse appears (here: the embedded engine takes over).
    const up = await startCollectorProcess(configFile)
    await eventually('backlog drained into ClickHouse', async () => (await backlog(up.url)) === 0, 60_000)
    expect(await metric(up.url, 'actline_wal_corrupt_records_total')).toBe(1)
    up.child.kill('SIGTERM')
    expect(await up.exited).toBe(0)
    const [region] = readFileSync(join(data, 'dead-letter', 'wal.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(region).toMatchObject({ segment: join(walDir, first), offset: 0, reason: 'record fails its checksum' })
    expect(Buffer.from(region.bytes, 'base64').length).toBe(12 + bytes.readUInt32LE(0))
    const delivered = ids.filter((id) => !damaged.includes(id))
    expect(delivered.length).toBe(ids.length - 10)
    await expectStoredOnce(testConfig(data), delivered, { postgres: false })
    // PostgreSQL had taken every row before the byte was flipped.
    const stores = await openStores(testConfig(data))
    try {
      const { rows } = await stores.postgres.query('SELECT count(DISTINCT id)::int AS u FROM audit_log WHERE id = ANY($1::uuid[])', [ids])
      expect(rows[0].u).toBe(ids.length)
    } finally {
      await stores.close()
    }
  })
})
