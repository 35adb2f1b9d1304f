/**
 * End-to-end ingest behaviour, run against each PostgreSQL target: the real
 * collector on an ephemeral port, real embedded ClickHouse, and PGlite or the
 * real server. Every assertion reads what actually landed in the stores.
 */
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { uuidv7 } from 'uuidv7'
import {
  chRows, createScratchDatabase, eventually, pgRows, post, startCollector, storesOf, tempDir, testConfig,
  type PgMode, type RunningCollector,
} from '../helpers/stores.ts'

export function ingestSuite(mode: PgMode): void {
  describe(`ingest with ${mode} PostgreSQL`, () => {
    let run: RunningCollector
    let stores: ReturnType<typeof storesOf>
    const dir = tempDir()
    let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined

    beforeAll(async () => {
      scratch = mode === 'server' ? await createScratchDatabase() : undefined
      run = await startCollector(
        testConfig(dir.path, {
          receivers: { activity: { max_body_bytes: 64 * 1024 } },
          ...(scratch && { exporters: { postgres: { url: scratch.url } } }),
        }),
      )
      stores = storesOf(run.collector)
    })

    afterAll(async () => {
      await run?.collector.shutdown()
      await scratch?.drop()
      dir.remove()
    })

    async function landed(ids: string[], where: { ch: number; pg: number }) {
      await eventually(`${where.ch} rows in ClickHouse and ${where.pg} in PostgreSQL`, async () => {
        const [c, p] = await Promise.all([chRows(stores.clickhouse, ids), pgRows(stores.postgres, ids)])
        return c.length >= where.ch && p.length >= where.pg
      })
      return { ch: await chRows<any>(stores.clickhouse, ids), pg: await pgRows(stores.postgres, ids) }
    }

    it('stores the README example in both stores with the collector-assigned id', async () => {
      const res = await post(run.url, JSON.stringify({ action: 'user.login', source: 'user', actor_id: 'u1' }))
      expect(res.status).toBe(200)
      expect(res.json).toMatchObject({ accepted: 1, rejected: 0, errors: [] })
      const [id] = res.json.ids
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/) // UUIDv7

      const { ch, pg } = await landed([id], { ch: 1, pg: 1 })
      expect(ch[0]).toMatchObject({ id, action: 'user.login', source: 'user', actor_id: 'u1', category: 'other', severity: 'info', status: 'success' })
      expect(pg[0]).toMatchObject({ id, action: 'user.login', source: 'user', actor_id: 'u1' })
    })

    it('keeps every field intact through both stores', async () => {
      const id = uuidv7()
      const event = {
        id,
        timestamp: '2026-03-04T05:06:07.089Z',
        source: 'user',
        action: 'invoice.paid',
        category: 'billing',
        severity: 'warning',
        status: 'failure',
        entity_type: 'invoice',
        entity_id: 'inv-9',
        actor_id: 'u7',
        tenant_id: 't1',
        service: 'billing-api',
        trace_id: '0af7651916cd43dd8448eb211c80319c',
        span_id: 'b7ad6b7169203331',
        correlation_id: 'corr-1',
        duration_ms: 12.5,
        details: { amount: 42, currency: 'EUR', note: "l'été \"quoted\"" },
        ip: '203.0.113.9',
        user_agent: 'curl/8',
        attributes: { plan: 'pro', retries: 2 },
      }
      expect((await post(run.url, JSON.stringify(event))).json.accepted).toBe(1)
      const { ch, pg } = await landed([id], { ch: 1, pg: 1 })

      expect(ch[0]).toMatchObject({
        timestamp: '2026-03-04 05:06:07.089', category: 'billing', severity: 'warning', status: 'failure',
        entity_type: 'invoice', entity_id: 'inv-9', tenant_id: 't1', service: 'billing-api',
        trace_id: event.trace_id, span_id: event.span_id, correlation_id: 'corr-1', duration_ms: 12.5,
        ip: '::ffff:203.0.113.9', user_agent: 'curl/8', attributes: { plan: 'pro', retries: '2' },
      })
      expect(JSON.parse(ch[0].details)).toEqual(event.details)

      expect(pg[0].occurred_at.toISOString()).toBe(event.timestamp)
      expect(pg[0]).toMatchObject({ details: event.details, ip: '203.0.113.9', attributes: { plan: 'pro', retries: '2' }, duration_ms: 12.5 })
    })

    it('routes only audit-relevant activities to PostgreSQL', async () => {
      const items = [
        { action: 'page.view', source: 'system' }, // not audit
        { action: 'user.update', source: 'user' }, // source user
        { action: 'disk.full', source: 'system', severity: 'critical' }, // severity
        { action: 'token.rotate', source: 'scheduled', category: 'security' }, // category
      ]
      const res = await post(run.url, items.map((i) => JSON.stringify(i)).join('\n'), { 'content-type': 'application/x-ndjson' })
      const ids: string[] = res.json.ids
      const { ch, pg } = await landed(ids, { ch: 4, pg: 3 })
      expect(ch).toHaveLength(4)
      expect(pg.map((r) => r.action).sort()).toEqual(['disk.full', 'token.rotate', 'user.update'])
    })

    it('accepts the good items of a batch and reports each bad one by index', async () => {
      const good1 = uuidv7()
      const good2 = uuidv7()
      const body = [
        JSON.stringify({ id: good1, action: 'a.ok', source: 'user' }),
        '{"action": "broken json"',
        JSON.stringify({ action: 'no.source' }),
        JSON.stringify({ id: good2, action: 'b.ok', source: 'user', severity: 'loud' }).replace('"loud"', '"notice"'),
        JSON.stringify({ action: 'x.y', source: 'user', severity: 'loud' }),
      ].join('\n')
      const res = await post(run.url, body, { 'content-type': 'application/x-ndjson' })
      expect(res.status).toBe(200)
      expect(res.json.accepted).toBe(2)
      expect(res.json.rejected).toBe(3)
      expect(res.json.errors.map((e: any) => [e.index, e.path])).toEqual([[1, ''], [2, 'source'], [4, 'severity']])
      expect(res.json.errors[0].message).toMatch(/line 2 is not valid JSON/)
      const { ch } = await landed([good1, good2], { ch: 2, pg: 2 })
      expect(ch.map((r) => r.id).sort()).toEqual([good1, good2].sort())
    })

    it('takes a JSON array and a gzip body', async () => {
      const ids = [uuidv7(), uuidv7()]
      const body = gzipSync(JSON.stringify(ids.map((id) => ({ id, action: 'gz.item', source: 'user' }))))
      const res = await post(run.url, body, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      expect(res.status).toBe(200)
      expect(res.json.accepted).toBe(2)
      await landed(ids, { ch: 2, pg: 2 })
    })

    it('stores a re-sent activity once in both stores (a client retrying after a lost reply)', async () => {
      const id = uuidv7()
      const body = JSON.stringify({ id, action: 'dup.check', source: 'user' })
      await post(run.url, body)
      await landed([id], { ch: 1, pg: 1 })
      const again = await post(run.url, body)
      // Idempotent: the retry succeeds with the same id, as the first request did.
      expect(again.json).toMatchObject({ accepted: 1, ids: [id] })
      // The same id twice in one request is one activity too.
      const twin = uuidv7()
      expect((await post(run.url, JSON.stringify([{ id: twin, action: 'dup.twin', source: 'user' }, { id: twin, action: 'dup.twin', source: 'user' }]))).json.accepted).toBe(2)
      await landed([twin], { ch: 1, pg: 1 })
      // pending counts rows in flight: zero means any second copy's export finished.
      await eventually('every copy exported', async () => Object.values(run.collector.pending()).every((n) => n === 0))
      expect(await pgRows(stores.postgres, [id, twin])).toHaveLength(2)
      expect(await chRows(stores.clickhouse, [id, twin])).toHaveLength(2)
    })

    it('keeps unknown fields as string attributes, explicit attributes winning', async () => {
      const id = uuidv7()
      const res = await post(run.url, JSON.stringify({ id, action: 'x.y', source: 'user', region: 'eu', count: 3, nested: { a: 1 }, plan: 'x', attributes: { plan: 'pro' } }))
      expect(res.json.accepted).toBe(1)
      const { ch, pg } = await landed([id], { ch: 1, pg: 1 })
      const expected = { region: 'eu', count: '3', nested: '{"a":1}', plan: 'pro' }
      expect(ch[0].attributes).toEqual(expected)
      expect(pg[0].attributes).toEqual(expected)
    })

    it('caps the listed errors at max_reported_errors but counts every rejected item', async () => {
      const body = [JSON.stringify({ action: 'ok.item', source: 'user' }), ...Array.from({ length: 150 }, () => '{"action":"x.y"}')].join('\n')
      const res = await post(run.url, body, { 'content-type': 'application/x-ndjson' })
      expect(res.json).toMatchObject({ accepted: 1, rejected: 150, errors_truncated: true })
      expect(res.json.errors).toHaveLength(100)
      const exact = await post(run.url, [JSON.stringify({ action: 'ok.item', source: 'user' }), '{"action":"x.y"}'].join('\n'), { 'content-type': 'application/x-ndjson' })
      expect(exact.json).not.toHaveProperty('errors_truncated')
    })

    it('rejects malformed JSON with 400 and a JSON error body', async () => {
      const res = await post(run.url, '{"action":')
      expect(res.status).toBe(400)
      expect(res.json).toMatchObject({ error: 'ACT_ERR_MALFORMED_BODY', details: {} })
      expect(res.json.message).toMatch(/not valid JSON/)
    })

    it('rejects a batch whose every item is invalid with 400 listing each', async () => {
      const res = await post(run.url, JSON.stringify([{ action: 'a' }, { source: 'user' }]))
      expect(res.status).toBe(400)
      expect(res.json.error).toBe('ACT_ERR_VALIDATION')
      expect(res.json.details.rejected).toBe(2)
      expect(res.json.details.errors.map((e: any) => e.index)).toEqual([0, 1])
    })

    it('answers 415 for an unsupported content type and for an unknown encoding', async () => {
      const plain = await post(run.url, 'hello', { 'content-type': 'text/plain' })
      expect(plain.status).toBe(415)
      expect(plain.json).toMatchObject({ error: 'ACT_ERR_UNSUPPORTED_MEDIA_TYPE', message: "content-type 'text/plain' is not supported" })
      const br = await post(run.url, '{}', { 'content-type': 'application/json', 'content-encoding': 'br' })
      expect(br.status).toBe(415)
      expect(br.json.error).toBe('ACT_ERR_UNSUPPORTED_ENCODING')
    })

    it('answers 413 past the size limit, also when a small gzip body expands past it', async () => {
      const big = JSON.stringify({ action: 'x.y', source: 'user', details: 'a'.repeat(70 * 1024) })
      const plain = await post(run.url, big)
      expect(plain.status).toBe(413)
      expect(plain.json.error).toBe('ACT_ERR_BODY_TOO_LARGE')
      const bomb = gzipSync(big)
      expect(bomb.length).toBeLessThan(2048)
      const zipped = await post(run.url, bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      expect(zipped.status).toBe(413)
      expect(zipped.json.error).toBe('ACT_ERR_BODY_TOO_LARGE')
    })

    it('answers 400 for a corrupt gzip body', async () => {
      const res = await post(run.url, Buffer.from('definitely not gzip'), { 'content-type': 'application/json', 'content-encoding': 'gzip' })
      expect(res.status).toBe(400)
      expect(res.json.error).toBe('ACT_ERR_MALFORMED_BODY')
    })

    it('answers 404 as JSON for an unknown route', async () => {
      const res = await fetch(`${run.url}/v1/nope`)
      expect(res.status).toBe(404)
      expect(await res.json()).toMatchObject({ error: 'ACT_ERR_NOT_FOUND' })
    })

    it('reports liveness and store readiness', async () => {
      expect(await (await fetch(`${run.url}/healthz`)).json()).toEqual({ status: 'ok' })
      const ready = await fetch(`${run.url}/readyz`)
      expect(ready.status).toBe(200)
      expect(await ready.json()).toEqual({ status: 'ready', stores: { clickhouse: 'ok', postgres: 'ok' }, pipeline: { ingest: 'ok' } })
    })
  })
}
