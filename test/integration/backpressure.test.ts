/**
 * A store that stops accepting writes (ClickHouse's table detached: a real
 * failure of the real engine) fills its queue; the collector then refuses
 * with 429 instead of dropping data, and everything it did accept lands once
 * the store is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chRows, eventually, pgRows, post, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

const dir = tempDir()
let run: RunningCollector
let stores: ReturnType<typeof storesOf>

beforeAll(async () => {
  run = await startCollector(testConfig(dir.path, {
    wal: { max_bytes: 16384 },
    pipeline: { batch: { send_batch_size: 10, timeout_ms: 20 }, retry: { initial_interval_ms: 20, max_interval_ms: 100 } },
  }))
  stores = storesOf(run.collector)
})
afterAll(async () => {
  await run?.collector.shutdown()
  dir.remove()
})

const events = (n: number, tag: string) => Array.from({ length: n }, (_, i) => JSON.stringify({ action: 'bp.test', source: 'user', entity_id: `${tag}-${i}` })).join('\n')
const ndjson = { 'content-type': 'application/x-ndjson' }

describe('backpressure while a store is down', () => {
  it('keeps the other store flowing, refuses with 429 and Retry-After once the queue is full, and drains everything accepted when the store returns', async () => {
    await stores.clickhouse.command({ query: 'DETACH TABLE actline.activities' })
    const accepted: string[] = []
    let refused: Awaited<ReturnType<typeof post>> | undefined
    let refusedTag = ''
    for (let i = 0; i < 10 && !refused; i++) {
      const res = await post(run.url, events(10, `r${i}`), ndjson)
      if (res.status === 200) accepted.push(...res.json.ids)
      else [refused, refusedTag] = [res, `r${i}`]
    }
    expect(refused?.status).toBe(429)
    expect(refused?.headers.get('retry-after')).toBe('1')
    expect(refused?.json).toMatchObject({ error: 'ACT_ERR_BACKPRESSURE', details: { reason: 'write-ahead log full', nothing_was_accepted: true } })
    expect(accepted.length).toBeGreaterThanOrEqual(10)

    // While full, a request is refused before its body is even parsed: a
    // malformed one gets 429, not 400.
    const early = await post(run.url, '{not json', { 'content-type': 'application/json' })
    expect(early.status).toBe(429)
    const metrics = await (await fetch(`${run.url}/metrics`)).text()
    expect(metrics).toMatch(/actline_receiver_refused_requests_total [1-9]/)

    // The other store is not held up by the one that is down.
    await eventually('PostgreSQL has the accepted rows while ClickHouse is down', async () =>
      (await pgRows(stores.postgres, accepted)).length === accepted.length)

    await stores.clickhouse.command({ query: 'ATTACH TABLE actline.activities' })
    await eventually('every accepted row in ClickHouse', async () => (await chRows(stores.clickhouse, accepted)).length === accepted.length)
    expect(await chRows(stores.clickhouse, accepted)).toHaveLength(accepted.length)
    expect(await pgRows(stores.postgres, accepted)).toHaveLength(accepted.length)

    // Nothing of the refused request was kept: the client will send it again.
    const leaked = await stores.clickhouse.query({
      query: 'SELECT count() AS n FROM actline.activities WHERE startsWith(entity_id, {tag:String})',
      query_params: { tag: `${refusedTag}-` },
      format: 'JSONEachRow',
    })
    expect(Number((await leaked.json<{ n: string }>())[0]!.n)).toBe(0)

    const after = await post(run.url, events(5, 'after'), ndjson)
    expect(after.status).toBe(200)
  })
})
