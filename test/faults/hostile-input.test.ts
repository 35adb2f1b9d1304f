/**
 * Values no store can hold, sent to a real collector process as a hostile
 * client would: each is refused per item (the good items of the same
 * request are stored), the API's parameters are checked before any SQL,
 * and nothing accepted stalls an exporter: every acknowledged id is in both
 * stores once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import { eventually, openStores, post, tempDir, testConfig } from '../helpers/stores.ts'
import { backlog, killChildren, startCollectorProcess, writeConfig, type CollectorProcess } from '../helpers/process.ts'
import { expectStoredOnce, metric } from '../helpers/faults.ts'

afterAll(killChildren)
const dir = tempDir('actline-hostile-')
afterAll(() => dir.remove())

const NIL = '00000000-0000-0000-0000-000000000000'
const ndjson = { 'content-type': 'application/x-ndjson' }

describe('hostile input', () => {
  let c: CollectorProcess
  const acked: string[] = []
  beforeAll(async () => {
    c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${dir.path}\nserver: { port: 0 }\npipeline: { batch: { timeout_ms: 100 } }\n`))
  }, 180_000)

  it('refuses a lone surrogate with a per-item error naming the field (400 when it is the only item)', async () => {
    const res = await post(c.url, '{"action":"a.b","source":"user","actor_id":"x\\ud800"}')
    expect(res.status).toBe(400)
    expect(res.json.error).toBe('ACT_ERR_VALIDATION')
    expect(res.json.details.errors[0]).toMatchObject({ index: 0, path: 'actor_id', message: expect.stringMatching(/lone UTF-16 surrogate/) })
  })

  it('keeps the good items of a request and names each bad one: NUL, nesting, a 10 MB unknown field, invalid UTF-8, Infinity', async () => {
    const good = uuidv7()
    const named = uuidv7()
    const lines: (string | Buffer)[] = [
      JSON.stringify({ id: good, action: 'hostile.good', source: 'user' }),
      '{"action":"a.b","source":"user","entity_id":"a\\u0000b"}',
      `{"action":"a.b","source":"user","details":{"d":${'['.repeat(5000)}${']'.repeat(5000)}}}`,
      JSON.stringify({ action: 'a.b', source: 'user', blob: 'x'.repeat(10 * 1024 * 1024) }),
      Buffer.concat([Buffer.from('{"action":"a.b","source":"user","actor_id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
      '{"action":"a.b","source":"user","details":{"n":1e400}}',
      `{"id":"${named}","action":"hostile.names","source":"user","__proto__":"p","constructor":"c","toString":"t"}`,
      '{"action":"a.b","source":"user","attributes":{"k\\udc00":"v"}}',
      JSON.stringify({ id: NIL, action: 'hostile.nil', source: 'user' }),
    ]
    const body = Buffer.concat(lines.flatMap((l) => [Buffer.isBuffer(l) ? l : Buffer.from(l), Buffer.from('\n')]))
    const res = await post(c.url, body, ndjson)
    expect(res.status).toBe(200)
    expect(res.json).toMatchObject({ accepted: 3, rejected: 6 })
    expect(res.json.ids).toEqual([good, named, NIL])
    const byIndex = Object.fromEntries(res.json.errors.map((e: { index: number; message: string }) => [e.index, e.message]))
    expect(byIndex[1]).toMatch(/NUL/)
    expect(byIndex[2]).toMatch(/nested more than 32 levels/)
    expect(byIndex[3]).toMatch(/at most 262144/)
    expect(byIndex[4]).toMatch(/not valid UTF-8/)
    expect(byIndex[5]).toMatch(/out of range/)
    expect(byIndex[7]).toMatch(/lone UTF-16 surrogate/)
    acked.push(good, named, NIL)
  })

  it('stores the nil UUID once when it is sent twice', async () => {
    const res = await post(c.url, JSON.stringify({ id: NIL, action: 'hostile.nil', source: 'user' }))
    expect(res.status).toBe(200)
  })

  it('refuses a body that is not UTF-8 as a whole when it is one JSON document', async () => {
    const res = await post(c.url, Buffer.concat([Buffer.from('[{"action":"a.b","source":"user","actor_id":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]')]))
    expect(res.status).toBe(400)
    expect(res.json).toMatchObject({ error: 'ACT_ERR_MALFORMED_BODY', message: expect.stringMatching(/not valid UTF-8/) })
  })

  it('rejects the span with a lone surrogate in OTLP JSON stringValue and keeps the other', async () => {
    const traceId = 'a'.repeat(32)
    const span = (spanId: string, value: string) =>
      `{"traceId":"${traceId}","spanId":"${spanId}","name":"x","kind":1,"startTimeUnixNano":"${BigInt(Date.now()) * 1_000_000n}","endTimeUnixNano":"${BigInt(Date.now() + 5) * 1_000_000n}",` +
      `"attributes":[{"key":"activity.action","value":{"stringValue":"hostile.span"}},{"key":"activity.actor_id","value":{"stringValue":"${value}"}}]}`
    const body = `{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"spans":[${span('1'.repeat(16), 'u\\ud800')},${span('2'.repeat(16), 'fine')}]}]}]}`
    const res = await post(c.url, body, { 'content-type': 'application/json' }, '/v1/traces')
    expect(res.status).toBe(200)
    expect(res.json.partialSuccess.rejectedSpans).toBe(1)
    expect(res.json.partialSuccess.errorMessage).toMatch(/lone UTF-16 surrogate/)
  })

  it('answers 400 naming the parameter for times the stores cannot hold, forged cursors and NUL in a filter', async () => {
    const cursor = (ts: string, id: string) => Buffer.from(JSON.stringify([ts, id])).toString('base64url')
    const cases: [string, string][] = [
      ['/api/v1/activities?from=9999999999999999', 'from'],
      ['/api/v1/activities?from=now-99999999999999999999d', 'from'],
      ['/api/v1/trends?to=2400-01-01T00:00:00Z', 'to'],
      ['/api/v1/trends?from=1900-01-02T00:00:00Z&to=2299-12-30T00:00:00Z', 'from'],
      ['/api/v1/trends?from=now-30d&interval=minute', 'interval'],
      [`/api/v1/activities?cursor=${cursor('2026-13-45 00:00:00.000', uuidv7())}`, 'cursor'],
      [`/api/v1/activities?cursor=${cursor('2026-01-01 00:00:00.000', '-'.repeat(36))}`, 'cursor'],
      [`/api/v1/audit?cursor=${cursor('2026-02-30T00:00:00.000000Z', uuidv7())}`, 'cursor'],
      ['/api/v1/audit?actor=a%00b', 'actor'],
      ['/api/v1/activities?q=x%00', 'q'],
    ]
    for (const [path, param] of cases) {
      const res = await fetch(`${c.url}${path}`)
      const body = await res.json()
      expect({ path, status: res.status, param: body.details?.param }).toEqual({ path, status: 400, param })
      expect(body.error).toBe('ACT_ERR_VALIDATION')
    }
  })

  it('leaves no exporter stalled: the log drains, /readyz is ready, nothing failing', async () => {
    await eventually('log drained', async () => (await backlog(c.url)) === 0, 30_000)
    expect((await fetch(`${c.url}/readyz`)).status).toBe(200)
    expect(await metric(c.url, 'actline_exporter_failing', 'exporter="clickhouse"')).toBe(0)
    expect(await metric(c.url, 'actline_exporter_failing', 'exporter="postgres"')).toBe(0)
    c.child.kill('SIGTERM')
    expect(await c.exited).toBe(0)
  })

  it('has every acknowledged id once in both stores, unknown fields named __proto__ and constructor kept', async () => {
    const config = testConfig(dir.path)
    await expectStoredOnce(config, acked)
    const stores = await openStores(config)
    try {
      const [ch] = await (
        await stores.clickhouse.query({
          query: "SELECT attributes['__proto__'] AS p, attributes['constructor'] AS c, attributes['toString'] AS t FROM actline.activities WHERE action = 'hostile.names'",
          format: 'JSONEachRow',
        })
      ).json<Record<string, string>>()
      expect(ch).toEqual({ p: 'p', c: 'c', t: 't' })
      const { rows } = await stores.postgres.query("SELECT attributes->>'__proto__' AS p, attributes->>'constructor' AS c FROM audit_log WHERE action = 'hostile.names'")
      expect(rows).toEqual([{ p: 'p', c: 'c' }])
    } finally {
      await stores.close()
    }
  })
})
