/**
 * Each store failing for a while and coming back while ingest goes on:
 * PostgreSQL behind a real TCP proxy that is cut and restored; ClickHouse's
 * table detached and re-attached on the real embedded engine. Every
 * acknowledged event must end up in each store exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import { eventually, post, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts'
import { startPostgresTarget, type PostgresTarget } from '../helpers/postgres-target.ts'

const dir = tempDir()
let run: RunningCollector
let stores: ReturnType<typeof storesOf>
let proxy: TcpProxy
let target: PostgresTarget

beforeAll(async () => {
  target = await startPostgresTarget(`${dir.path}/pg-target`)
  proxy = await startTcpProxy(target.url.hostname, Number(target.url.port))
  const viaProxy = new URL(target.url)
  viaProxy.port = String(proxy.port)
  run = await startCollector(testConfig(dir.path, {
    exporters: { postgres: { url: viaProxy.toString(), pool_size: 2, statement_timeout_ms: 2000 } },
    pipeline: { retry: { initial_interval_ms: 50, max_interval_ms: 500 } },
  }))
  stores = storesOf(run.collector)
})

afterAll(async () => {
  await run?.collector.shutdown()
  await proxy?.close()
  await target?.stop()
  dir.remove()
})

/** Posts events with client ids every few ms until stopped; returns the acknowledged ids. */
function keepPosting() {
  const acked: string[] = []
  let statuses: number[] = []
  let stop = false
  const done = (async () => {
    while (!stop) {
      const ids = Array.from({ length: 20 }, () => uuidv7())
      const res = await post(run.url, ids.map((id) => JSON.stringify({ id, action: 'outage.test', source: 'user' })).join('\n'), { 'content-type': 'application/x-ndjson' })
      statuses.push(res.status)
      if (res.status === 200) acked.push(...ids)
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  return {
    acked,
    statuses: () => statuses,
    async stop() {
      stop = true
      await done
    },
  }
}

/** Rows and distinct ids among `ids`, in each store. */
async function chCount(ids: string[]) {
  const rs = await stores.clickhouse.query({
    query: 'SELECT count() AS rows, uniqExact(id) AS uniq FROM actline.activities WHERE id IN {ids:Array(UUID)}',
    query_params: { ids },
    format: 'JSONEachRow',
  })
  const [c] = await rs.json<{ rows: string; uniq: string }>()
  return { rows: Number(c!.rows), uniq: Number(c!.uniq) }
}

async function pgCount(ids: string[]) {
  const { rows } = await stores.postgres.query('SELECT count(*)::int AS rows, count(DISTINCT id)::int AS uniq FROM audit_log WHERE id = ANY($1::uuid[])', [ids])
  return rows[0] as { rows: number; uniq: number }
}

describe('a store fails for a while and comes back, ingest going on', () => {
  it('PostgreSQL cut at the TCP level: ingest and ClickHouse go on, the backlog drains once when it returns', async () => {
    const load = keepPosting()
    await eventually('some traffic', async () => load.acked.length > 200)
    await proxy.cut()
    const ackedAtCut = load.acked.length
    await new Promise((r) => setTimeout(r, 2500))
    // Still accepting, and ClickHouse still receiving, while PostgreSQL is unreachable.
    expect(load.acked.length).toBeGreaterThan(ackedAtCut + 200)
    const during = load.acked.slice(ackedAtCut)
    await eventually('ClickHouse has rows accepted during the cut', async () => (await chCount(during)).rows === during.length)
    await proxy.restore()
    await new Promise((r) => setTimeout(r, 500))
    await load.stop()

    const ids = [...load.acked]
    // Both: ClickHouse may still hold the last batch when PostgreSQL's backlog is done.
    await eventually('both stores caught up', async () => (await pgCount(ids)).rows >= ids.length && (await chCount(ids)).rows >= ids.length, 60_000)
    expect([await chCount(ids), await pgCount(ids)]).toEqual([{ rows: ids.length, uniq: ids.length }, { rows: ids.length, uniq: ids.length }])
    expect(load.statuses().every((s) => s === 200)).toBe(true)
  })

  it('ClickHouse table detached: ingest and PostgreSQL go on, the backlog drains once when it is re-attached', async () => {
    const load = keepPosting()
    await eventually('some traffic', async () => load.acked.length > 200)
    await stores.clickhouse.command({ query: 'DETACH TABLE actline.activities' })
    const ackedAtDetach = load.acked.length
    await new Promise((r) => setTimeout(r, 2500))
    expect(load.acked.length).toBeGreaterThan(ackedAtDetach + 200)
    const during = load.acked.slice(ackedAtDetach)
    await eventually('PostgreSQL has rows accepted while ClickHouse was down', async () => (await pgCount(during)).rows === during.length)
    // The store answers its ping, but its exports fail: /readyz and /metrics name it.
    const ready = await fetch(`${run.url}/readyz`)
    expect(ready.status).toBe(503)
    expect((await ready.json()).details.stores.clickhouse).toMatch(/^failing since \S+: .*(UNKNOWN_TABLE|does not exist|doesn't exist)/)
    expect(await (await fetch(`${run.url}/metrics`)).text()).toContain('actline_exporter_failing{exporter="clickhouse"} 1')
    await stores.clickhouse.command({ query: 'ATTACH TABLE actline.activities' })
    await load.stop()

    const ids = [...load.acked]
    await eventually('both stores caught up', async () => (await chCount(ids)).rows >= ids.length && (await pgCount(ids)).rows >= ids.length, 60_000)
    expect([await chCount(ids), await pgCount(ids)]).toEqual([{ rows: ids.length, uniq: ids.length }, { rows: ids.length, uniq: ids.length }])
    expect(load.statuses().every((s) => s === 200)).toBe(true)
    await eventually('ready again', async () => (await fetch(`${run.url}/readyz`)).status === 200)
  })
})
