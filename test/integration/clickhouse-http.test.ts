/**
 * The embedded store's ClickHouse HTTP interface, through the real
 * @clickhouse/client over real HTTP, and curl-style raw requests: reads in
 * several formats with parameters and a database, gzip, ClickHouse's error
 * shape, and every way to write or reach outside the store refused.
 */
import { ClickHouseLogLevel, createClient, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client'
// @ts-expect-error: no types shipped
import AplaClickHouse from '@apla/clickhouse'
import { ClickHouse as TimonKKClickHouse } from 'clickhouse'
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

  // As curl -u default: sends it: credentials in a header, which no web page of another site can add.
  const raw = (query: string, init: RequestInit & { search?: Record<string, string> } = {}) => {
    const url = new URL(c.clickhouseHttp!)
    for (const [k, v] of Object.entries(init.search ?? {})) url.searchParams.set(k, v)
    return fetch(url, { method: 'POST', body: query, ...init, headers: { authorization: `Basic ${Buffer.from('default:').toString('base64')}`, ...init.headers } })
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
    expect(JSON.parse(tsv.headers.get('x-clickhouse-summary')!)).toMatchObject({ written_rows: '0', result_rows: '1', result_bytes: String(`${N}\n`.length) })
    const csv = await raw('SELECT number AS n FROM numbers(3) FORMAT CSVWithNames')
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=UTF-8; header=present')
    expect(await csv.text()).toBe('"n"\n0\n1\n2\n')
    expect(JSON.parse(csv.headers.get('x-clickhouse-summary')!)).toMatchObject({ result_rows: '3' })
    expect((await raw('SELECT 1 FORMAT CSV')).headers.get('content-type')).toBe('text/csv; charset=UTF-8; header=absent')
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

  it('refuses every write and every setting that would lift a bound with ClickHouse errors, and nothing is written', async () => {
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
      'kill /* a comment */ query where 1 sync',
      'SET readonly = 0',
      'USE system',
      'CREATE TABLE actline.x (a UInt8) ENGINE = Memory',
      'OPTIMIZE TABLE actline.activities FINAL',
      'GRANT SELECT ON *.* TO default',
      'SELECT 1 SETTINGS readonly = 0',
      'SELECT 1 SETTINGS max_memory_usage = 100000000000',
      'SELECT * FROM (SELECT 1 SETTINGS max_result_rows = 0)',
    ]) {
      const r = await refused(query)
      expect([r.status, r.code], query).toEqual([500, '164'])
      expect(r.body, query).toMatch(/^Code: 164\. DB::Exception: .*\(READONLY\)\n$/)
    }
    for (const [name, value] of [['max_result_rows', '0'], ['max_result_rows', '99999999'], ['readonly', '0'], ['max_execution_time', '0'], ['max_memory_usage', '0'], ['max_threads', '1000'], ['format_schema', '/etc/passwd'], ['output_format_schema', '/tmp/x'], ['allow_introspection_functions', '1'], ['result_overflow_mode', 'nope']] as const) {
      expect((await refused('SELECT 1', { [name]: value })).code, `${name}=${value}`).toBe('164')
    }
    const [r] = await (await client.query({ query: 'SELECT count() AS n FROM activities', format: 'JSONEachRow' })).json<{ n: string }>()
    expect(Number(r!.n)).toBe(N)
  })

  it('honours settings that only restrict a query or shape its output, as ClickHouse does', async () => {
    const one = async (query: string, clickhouse_settings: ClickHouseSettings) =>
      (await (await client.query({ query, format: 'JSONEachRow', clickhouse_settings })).json<Record<string, unknown>>())[0]!
    expect(await one('SELECT toUInt64(1) AS n', { output_format_json_quote_64bit_integers: 0 })).toEqual({ n: 1 })
    expect(await one('SELECT toUInt64(1) AS n', {})).toEqual({ n: '1' })
    expect(await one("SELECT toDateTime('2026-01-02 03:04:05', 'UTC') AS t", { date_time_output_format: 'iso' })).toEqual({ t: '2026-01-02T03:04:05Z' })
    expect(String((await one("SELECT getSetting('max_threads') AS t", { max_threads: 1 })).t)).toBe('1')
    expect(await one('SELECT b.y AS y FROM (SELECT 1 AS x) AS a LEFT JOIN (SELECT 2 AS x, 3 AS y) AS b USING (x)', { join_use_nulls: 1 })).toEqual({ y: null })
    expect(await one('SELECT b.y AS y FROM (SELECT 1 AS x) AS a LEFT JOIN (SELECT 2 AS x, 3 AS y) AS b USING (x)', {})).toEqual({ y: 0 })
    // Lower than the bound is a bound of its own.
    await expect(client.query({ query: 'SELECT number FROM numbers(100)', format: 'JSONEachRow', clickhouse_settings: { max_result_rows: '10' } })).rejects.toMatchObject({ code: '396' })
    // Protocol settings clients send are taken.
    const res = await raw('SELECT 1', { search: { wait_end_of_query: '1', send_progress_in_http_headers: '1', session_id: 'abc', session_timeout: '60', compress: '0' } })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.headers.get('x-clickhouse-progress')!)).toMatchObject({ result_rows: '1' })
    // ClickHouse's own block compression is not spoken: said, never sent uncompressed to a client that expects it.
    const compressed = await raw('SELECT 1', { search: { compress: '1' } })
    expect([compressed.status, compressed.headers.get('x-clickhouse-exception-code')]).toEqual([501, '48'])
  })

  it('serves the third-party npm clients: clickhouse (a multipart/form-data POST with usePost) and @apla/clickhouse', async () => {
    const { port } = new URL(c.clickhouseHttp!)
    const timonkk = new TimonKKClickHouse({ url: 'http://127.0.0.1', port: Number(port), basicAuth: { username: 'default', password: '' }, usePost: true, format: 'json', config: { database: 'actline' } })
    const rows = (await timonkk.query("SELECT action, count() AS n FROM activities GROUP BY action ORDER BY action").toPromise()) as { action: string; n: number }[]
    expect(rows.map((r) => [r.action, Number(r.n)])).toEqual([['order.create', 10], ['order.update', 20]])
    // Its long queries go the same way: a body larger than a URL would hold.
    const long = (await timonkk.query(`SELECT length('${'y'.repeat(100_000)}') AS n`).toPromise()) as { n: number }[]
    expect(Number(long[0]!.n)).toBe(100_000)
    await expect(timonkk.query("SELECT file('/etc/hostname')").toPromise()).rejects.toThrow(/Code: 497\. .*ACCESS_DENIED/)

    const apla = new AplaClickHouse({ host: '127.0.0.1', port: Number(port), user: 'default', password: '', dataObjects: true, queryOptions: { database: 'actline' } })
    const result = await apla.querying("SELECT count() AS n FROM activities WHERE action = 'order.create'")
    expect(Number(result.data[0].n)).toBe(10)
    await expect(apla.querying('DROP TABLE activities')).rejects.toThrow(/^Code: 164\. .*READONLY/)
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

  it('answers a result of many blocks as one document in formats with a header and a footer', async () => {
    const n = 50_000
    const sql = `SELECT number AS n, toString(number) AS s FROM numbers(${n})`
    const json = await (await client.query({ query: sql, format: 'JSON' })).json<{ n: string; s: string }>()
    expect(json.rows).toBe(n)
    expect(json.data.map((r) => Number(r.n))).toEqual(Array.from({ length: n }, (_, i) => i))
    const compact = await (await client.query({ query: sql, format: 'JSONCompact' })).json<[string, string][]>()
    expect(compact.data).toHaveLength(n)
    const csv = (await (await raw(`${sql} FORMAT CSVWithNames`)).text()).trimEnd().split('\n')
    expect([csv.length, csv.filter((l) => l === '"n","s"').length, csv.at(-1)]).toEqual([n + 1, 1, `${n - 1},"${n - 1}"`])
    const tsv = (await (await raw(`${sql} FORMAT TSVWithNamesAndTypes`)).text()).trimEnd().split('\n')
    expect(tsv.slice(0, 3)).toEqual(['n\ts', 'UInt64\tString', '0\t0'])
    expect(tsv).toHaveLength(n + 2)
    // A streamed format gives the same rows.
    expect(await (await client.query({ query: sql, format: 'JSONEachRow' })).json()).toHaveLength(n)
  })

  it('bounds a result and a query: too many rows and too large a query are errors, not a flood', async () => {
    const res = await raw('SELECT number FROM numbers(2000000)')
    expect(res.headers.get('x-clickhouse-exception-code')).toBe('396')
    // Answered whole, a format with a header is bounded by the engine the same way.
    const json = await raw('SELECT number FROM numbers(2000000) FORMAT JSON')
    expect(json.headers.get('x-clickhouse-exception-code')).toBe('396')
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
