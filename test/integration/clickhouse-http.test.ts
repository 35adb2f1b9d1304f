/**
 * The embedded store's ClickHouse HTTP interface, through the real
 * @clickhouse/client over real HTTP, and curl-style raw requests: reads in
 * several formats with parameters and a database, gzip, ClickHouse's error
 * shape, and every way to write or reach outside the store refused.
 */
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventually, post, startCollector, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

describe('ClickHouse HTTP interface of the embedded store', () => {
  const dir = tempDir()
  let c: RunningCollector
  let client: ClickHouseClient
  const N = 30

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path))
    const rows = Array.from({ length: N }, (_, i) => ({ action: i % 3 ? 'order.update' : 'order.create', source: 'user', actor_id: `u${i % 5}`, tenant_id: "t'1" }))
    expect((await post(c.url, JSON.stringify(rows))).status).toBe(200)
    client = createClient({ url: c.clickhouseHttp!, database: 'actline' })
    await eventually('rows readable over the endpoint', async () => {
      const [r] = await (await client.query({ query: 'SELECT count() AS n FROM activities', format: 'JSONEachRow' })).json<{ n: string }>()
      return Number(r!.n) === N
    })
  }, 120_000)

  afterAll(async () => {
    await client?.close()
    await c?.collector.shutdown()
    dir.remove()
  })

  const raw = (query: string, init: RequestInit & { search?: Record<string, string> } = {}) => {
    const url = new URL(c.clickhouseHttp!)
    for (const [k, v] of Object.entries(init.search ?? {})) url.searchParams.set(k, v)
    return fetch(url, { method: 'POST', body: query, ...init })
  }

  it('answers a ping and a bare GET as ClickHouse does', async () => {
    expect(await (await fetch(`${c.clickhouseHttp}/ping`)).text()).toBe('Ok.\n')
    expect(await (await fetch(`${c.clickhouseHttp}/`)).text()).toBe('Ok.\n')
    expect(await client.ping()).toMatchObject({ success: true })
  })

  it('runs reads with bound parameters through @clickhouse/client', async () => {
    const rows = await (
      await client.query({
        query: 'SELECT action, count() AS n FROM activities WHERE tenant_id = {tenant:String} AND actor_id IN {actors:Array(String)} GROUP BY action ORDER BY action',
        query_params: { tenant: "t'1", actors: ['u0', 'u1'] },
        format: 'JSONEachRow',
      })
    ).json<{ action: string; n: string }>()
    expect(rows.map((r) => r.action)).toEqual(['order.create', 'order.update'])
    expect(rows.reduce((sum, r) => sum + Number(r.n), 0)).toBe(12)
    // A value is a value: quotes, backslashes and SQL in it never become syntax.
    const bound = async (value: string) =>
      (await (await client.query({ query: 'SELECT {v:String} AS v, count() AS n FROM activities WHERE tenant_id = {v:String}', query_params: { v: value }, format: 'JSONEachRow' })).json<{ v: string; n: string }>())[0]!
    expect(await bound("x' OR 1=1 --")).toEqual({ v: "x' OR 1=1 --", n: '0' })
    expect(await bound('back\\slash\ttab\nline')).toEqual({ v: 'back\\slash\ttab\nline', n: '0' })
    const [ident] = await (await client.query({ query: 'SELECT count() AS n FROM {t:Identifier}', query_params: { t: 'activities' }, format: 'JSONEachRow' })).json<{ n: string }>()
    expect(Number(ident!.n)).toBe(N)
    await expect(client.query({ query: 'SELECT {missing:String}', format: 'JSONEachRow' })).rejects.toMatchObject({ code: '456' })
    // Out of the type's range is an error, as ClickHouse binds it, never a wrapped-around value.
    await expect(client.query({ query: 'SELECT {n:UInt8} AS n', query_params: { n: 1000 }, format: 'JSONEachRow' })).rejects.toMatchObject({ code: '6' })
    // A long value travels in the URL as ClickHouse clients send it.
    const [long] = await (await client.query({ query: 'SELECT length({v:String}) AS n', query_params: { v: 'x'.repeat(200_000) }, format: 'JSONEachRow' })).json<{ n: string }>()
    expect(Number(long!.n)).toBe(200_000)
  })

  it('honours default_format, a FORMAT clause, the database parameter, and says the format and summary in headers', async () => {
    const tsv = await raw('SELECT count() FROM activities', { search: { database: 'actline', default_format: 'TSV' } })
    expect(tsv.status).toBe(200)
    expect(await tsv.text()).toBe(`${N}\n`)
    expect(tsv.headers.get('x-clickhouse-format')).toBe('TSV')
    expect(JSON.parse(tsv.headers.get('x-clickhouse-summary')!)).toMatchObject({ written_rows: '0' })
    const json = await raw('SELECT 1 AS one FORMAT JSON', { search: { default_format: 'TSV' } })
    expect(json.headers.get('content-type')).toMatch(/application\/json/)
    expect((await json.json()).data).toEqual([{ one: 1 }])
    const native = await raw('SELECT 1 AS one', { search: { default_format: 'Native' } })
    expect(native.headers.get('content-type')).toBe('application/octet-stream')
    expect(Buffer.from(await native.arrayBuffer()).includes(Buffer.from('UInt8'))).toBe(true)
    expect(await (await fetch(`${c.clickhouseHttp}/?query=${encodeURIComponent('SELECT 2')}`)).text()).toBe('2\n')
  })

  it('compresses with gzip when asked as ClickHouse clients ask', async () => {
    const res = await raw('SELECT number FROM numbers(1000) FORMAT CSV', { search: { enable_http_compression: '1' }, headers: { 'accept-encoding': 'gzip' } })
    expect(res.headers.get('content-encoding')).toBe('gzip')
    // fetch inflates it; the bytes on the wire were gzip.
    expect((await res.text()).split('\n')).toHaveLength(1001)
    const compressed = createClient({ url: c.clickhouseHttp!, compression: { response: true } })
    expect(await (await compressed.query({ query: 'SELECT 7 AS x', format: 'JSONEachRow' })).json()).toEqual([{ x: 7 }])
    await compressed.close()
  })

  it('refuses every write, setting change and way outside the store with ClickHouse errors, and nothing is written', async () => {
    const refused = async (query: string, search: Record<string, string> = {}) => {
      const res = await raw(query, { search })
      return { status: res.status, code: res.headers.get('x-clickhouse-exception-code'), body: await res.text() }
    }
    for (const query of [
      "INSERT INTO actline.activities (id, action) VALUES (generateUUIDv7(), 'x.y')",
      'ALTER TABLE actline.activities DELETE WHERE 1',
      'DROP TABLE actline.activities',
      'TRUNCATE TABLE actline.activities',
      'SYSTEM DROP MARK CACHE',
      'KILL QUERY WHERE 1',
      'SET readonly = 0',
      "SELECT * FROM file('/etc/hostname', 'LineAsString')",
      "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
      "CREATE TABLE actline.x (a UInt8) ENGINE = Memory",
      'SELECT 1 SETTINGS readonly = 0',
      'SELECT 1 SETTINGS max_memory_usage = 100000000000',
    ]) {
      const r = await refused(query)
      expect(r.code, query).toBe('164')
      expect(r.body, query).toMatch(/^Code: 164\. DB::Exception: .*\(READONLY\)\n$/)
    }
    expect((await refused('SELECT 1', { max_result_rows: '0' })).code).toBe('164')
    expect((await refused('SELECT 1', { readonly: '0' })).code).toBe('164')
    const [r] = await (await client.query({ query: 'SELECT count() AS n FROM activities', format: 'JSONEachRow' })).json<{ n: string }>()
    expect(Number(r!.n)).toBe(N)
  })

  it('answers a multi-statement body, a malformed query and an unknown format in ClickHouse error shape, which the client reports', async () => {
    const multi = await raw('SELECT 1; SELECT 2')
    expect([multi.status, multi.headers.get('x-clickhouse-exception-code')]).toEqual([400, '62'])
    expect((await raw("SELECT ';' AS semicolon; ")).status).toBe(200)
    const malformed = await raw('SELEC 1')
    expect([malformed.status, malformed.headers.get('x-clickhouse-exception-code')]).toEqual([400, '62'])
    const deep = await raw(`SELECT ${'('.repeat(10_000)}1${')'.repeat(10_000)}`)
    expect([deep.status, deep.headers.get('x-clickhouse-exception-code')]).toEqual([400, '306'])
    const format = await raw('SELECT 1', { search: { default_format: 'NoSuchFormat' } })
    expect([format.status, format.headers.get('x-clickhouse-exception-code')]).toEqual([404, '73'])
    await expect(client.query({ query: 'SELECT * FROM no_such_table', format: 'JSONEachRow' })).rejects.toMatchObject({ code: '60', type: 'UNKNOWN_TABLE' })
    await expect(client.command({ query: 'DROP TABLE actline.activities' })).rejects.toMatchObject({ code: '164', type: 'READONLY' })
  })

  it('bounds a result and a query: too many rows and too large a query are errors, not a flood', async () => {
    const res = await raw('SELECT number FROM numbers(2000000)')
    expect(res.headers.get('x-clickhouse-exception-code')).toBe('396')
    const large = await raw(`SELECT '${'x'.repeat(2 * 1024 * 1024)}'`)
    expect([large.status, large.headers.get('x-clickhouse-exception-code')]).toEqual([413, '229'])
    expect(await large.text()).toMatch(/^Code: 229\. DB::Exception: Query is too large.*\(QUERY_IS_TOO_LARGE\)\n$/)
  })
})

describe('ClickHouse HTTP interface with API keys', () => {
  const dir = tempDir()
  let c: RunningCollector

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path, { auth: { keys: [{ name: 'grafana', key: 'read-key-0123456789abcdef', scopes: ['read'] }, { name: 'app', key: 'ingest-key-0123456789abcd', scopes: ['ingest'] }] } }))
  }, 120_000)

  afterAll(async () => {
    await c?.collector.shutdown()
    dir.remove()
  })

  it('takes a read key as the password (basic auth, X-ClickHouse-Key), and refuses no key, a wrong one and an ingest key', async () => {
    const ok = createClient({ url: c.clickhouseHttp!, username: 'grafana', password: 'read-key-0123456789abcdef' })
    expect(await (await ok.query({ query: 'SELECT 1 AS x', format: 'JSONEachRow' })).json()).toEqual([{ x: 1 }])
    await ok.close()
    const headerAuth = await fetch(c.clickhouseHttp!, { method: 'POST', body: 'SELECT 1', headers: { 'x-clickhouse-user': 'grafana', 'x-clickhouse-key': 'read-key-0123456789abcdef' } })
    expect(headerAuth.status).toBe(200)
    for (const password of ['', 'wrong-key', 'ingest-key-0123456789abcd']) {
      const client = createClient({ url: c.clickhouseHttp!, username: 'x', password, log: { level: ClickHouseLogLevel.OFF } })
      await expect(client.query({ query: 'SELECT 1', format: 'JSONEachRow' })).rejects.toMatchObject({ code: '516', type: 'AUTHENTICATION_FAILED' })
      await client.close()
    }
  })
})
