/**
 * The ClickHouse endpoint tried as a hostile client would: every way we know
 * to write a file on the host, read one, reach the network or another
 * client's queries, carry state to the next client, run unbounded, guess
 * keys, or drive it from a web page. Each refusal is checked where a user
 * would look: the file on disk, the bytes of the answer, the next client's
 * result, the process's memory and CPU.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { createServer, request, type Server } from 'node:http'
import { join } from 'node:path'
import { createClient } from '@clickhouse/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launch, openPage } from '../helpers/browser.ts'
import { authWithKeys, KEYS } from '../helpers/keys.ts'
import { eventually, post, startCollector, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

const BASIC_DEFAULT = `Basic ${Buffer.from('default:').toString('base64')}`
const HOSTNAME = readFileSync('/etc/hostname', 'utf8').trim()

/** A POST as curl -u default: sends it; node:http, because fetch will not send another Host. */
function ask(c: RunningCollector, query: string, search: Record<string, string> = {}, headers: Record<string, string> = {}) {
  const url = new URL(c.clickhouseHttp!)
  for (const [k, v] of Object.entries(search)) url.searchParams.set(k, v)
  return send(url, 'POST', { authorization: BASIC_DEFAULT, 'content-type': 'application/octet-stream', ...headers }, query)
}

function send(url: URL, method: string, headers: Record<string, string>, body?: string): Promise<{ status: number; code: string | null; body: string; headers: Headers }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      res.on('end', () => {
        const h = new Headers()
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v)
        resolve({ status: res.statusCode!, code: h.get('x-clickhouse-exception-code'), body: Buffer.concat(parts).toString('utf8'), headers: h })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

describe('what a statement on the ClickHouse endpoint can reach', () => {
  const dir = tempDir()
  let c: RunningCollector

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path))
    expect((await post(c.url, JSON.stringify([{ action: 'order.create', source: 'user', actor_id: 'u1' }]))).status).toBe(200)
    await eventually('the row is readable', async () => (await ask(c, 'SELECT count() FROM activities')).body === '1\n', 60_000)
  }, 120_000)

  afterAll(async () => {
    await c?.collector.shutdown()
    dir.remove()
  })

  it('writes no file on the host: INTO OUTFILE in every spelling is refused and no file appears', async () => {
    const target = join(dir.path, 'out.csv')
    const relative = `actline-outfile-${process.pid}.csv`
    for (const query of [
      `SELECT 'x' INTO OUTFILE '${target}' TRUNCATE FORMAT TSVRaw`,
      `SELECT 'x' INTO OUTFILE '${target}' APPEND`,
      `select 'x' into /* a comment */ outfile '${target}'`,
      `SELECT 'x'\n-- a line comment\nINTO\tOUTFILE $$${target}$$`,
      `SELECT 'x' INTO OUTFILE '${relative}'`,
      `SELECT 'x' INTO OUTFILE '${target}' COMPRESSION 'gzip'`,
      `SELECT 'x' INTO OUTFILE '${target}' AND STDOUT`,
      `WITH 1 AS a SELECT a INTO OUTFILE '${target}'`,
      `(SELECT 1) UNION ALL (SELECT 2) INTO OUTFILE '${target}'`,
      `EXPLAIN SELECT 1 INTO OUTFILE '${target}'`,
      `SHOW TABLES INTO OUTFILE '${target}'`,
      `DESCRIBE TABLE activities INTO OUTFILE '${target}'`,
    ]) {
      const r = await ask(c, query)
      expect(r.status, query).not.toBe(200)
      expect(['497', '62'], `${query}: ${r.body}`).toContain(r.code)
    }
    expect(existsSync(target)).toBe(false)
    expect(existsSync(join(process.cwd(), relative))).toBe(false)
    rmSync(join(process.cwd(), relative), { force: true })
  })

  it('reads no file on the host and reaches no network: file(), url() and their kin in every position', async () => {
    for (const [query, search] of [
      ["SELECT file('/etc/hostname')"],
      ["SELECT FILE('/etc/hostname')"],
      ["SELECT fIlE('/etc/hostname') AS f"],
      ["SELECT `file`('/etc/hostname')"],
      ["SELECT/**/file/**/('/etc/hostname')"],
      ['SELECT file({p:String})', { param_p: '/etc/hostname' }],
      ["SELECT $$x$$ || file('/proc/self/environ')"],
      ["WITH f AS (SELECT file('/etc/hostname') AS x) SELECT * FROM f"],
      ["SELECT * FROM file('/etc/hostname', 'LineAsString')"],
      ["DESCRIBE file('/etc/hostname', 'LineAsString')"],
      ["SELECT 1 WHERE 'a' IN file('/etc/hostname', 'LineAsString')"],
      ["SELECT * FROM view(SELECT file('/etc/hostname'))"],
      ["SELECT * FROM numbers(1) AS n, file('/etc/hostname', 'LineAsString') AS f"],
      ["SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')"],
      ["SELECT * FROM remote('127.0.0.1', system.one)"],
      ["SELECT * FROM merge('system', '^processes$')"],
      ["SELECT * FROM executable('ls', 'TSV', 'x String')"],
      ["SELECT * FROM s3('http://127.0.0.1:9/b/k', 'LineAsString')"],
      ["SELECT * FROM loop(system.one) LIMIT 1"],
      ["SELECT catboostEvaluate('/etc/hostname', 1)"],
    ] as [string, Record<string, string>?][]) {
      const r = await ask(c, query, search)
      expect([r.status, r.code], `${query}: ${r.body}`).toEqual([403, '497'])
      expect(r.body).toMatch(/^Code: 497\. DB::Exception: .*\(ACCESS_DENIED\)\n$/)
      expect(r.body).not.toContain(HOSTNAME)
    }
  })

  it("reaches no other client's queries: system.processes, the query log and KILL are refused, the schema tables are not", async () => {
    for (const [query, search] of [
      ['SELECT query FROM system.processes'],
      ['select query from system . processes'],
      ['SELECT * FROM `system`.`query_log`'],
      ['SELECT * FROM system.users'],
      ['SELECT * FROM system.asynchronous_metrics'],
      ['SELECT 1 IN system.processes'],
      ['SELECT 1 FROM activities WHERE actor_id GLOBAL NOT IN system.processes'],
      ['SELECT 1 FROM activities WHERE actor_id IN (SELECT user FROM system.processes)'],
      ['SELECT * FROM activities AS a ASOF JOIN system.processes AS p ON a.id = p.query_id'],
      ['SELECT query FROM processes', { database: 'system' }],
      ['SELECT * FROM default.anything'],
    ] as [string, Record<string, string>?][]) {
      const r = await ask(c, query, search)
      expect([r.status, r.code], `${query}: ${r.body}`).toEqual([403, '497'])
    }
    expect((await ask(c, 'SHOW PROCESSLIST')).code).toBe('164')
    // The issue's statement: a dollar-quoted string hid a KILL from the old text splitter.
    const smuggled = await ask(c, "SELECT $$'$$; KILL QUERY WHERE query NOT LIKE '%KILL%' ASYNC --'")
    expect([smuggled.status, smuggled.code]).toEqual([400, '62'])
    expect((await ask(c, 'SELECT 1 /* ; KILL QUERY WHERE 1 */')).body).toBe('1\n')
    // What a client browsing the schema asks still works.
    for (const query of [
      "SELECT name FROM system.tables WHERE database = 'actline' AND name = 'activities'",
      "SELECT count() > 0 FROM system.columns WHERE database = 'actline' AND table = 'activities'",
      "SELECT name FROM system.databases WHERE name = 'actline'",
      "SELECT count() > 0 FROM system.functions WHERE name = 'count'",
      "SELECT value FROM system.settings WHERE name = 'readonly'",
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'actline' AND table_name = 'activities'",
      'SHOW TABLES FROM actline LIKE \'activities\'',
      'SELECT 1 FROM system.one',
      'EXISTS TABLE activities',
    ]) {
      const r = await ask(c, query)
      expect([r.status, r.body.trim()], query).toEqual([200, expect.stringMatching(/^(activities|1|actline)$/)])
    }
  })

  it('answers odd input with a ClickHouse error, never a 500, and runs nothing after a NUL', async () => {
    for (const [query, search] of [
      ['SELECT 1\u0000; KILL QUERY WHERE 1'],
      ["SELECT '\u0000'"],
      ['SELECT \uFFFF\uD800'],
      ['SELECT {t:Identifier} FROM numbers(1)', { param_t: 'number` FROM system.processes --' }],
      ['SELECT * FROM {t:Identifier}', { param_t: 'system.processes' }],
      ['SELECT {v:String}', { param_v: "\\'; KILL QUERY WHERE 1 --" }],
      ['SELECT 1 FORMAT'],
      ['SELECT 1', { query_id: 'a\r\nSet-Cookie: x=1' }],
      [''.padEnd(5000, '(')],
      ['/* only a comment */'],
    ] as [string, Record<string, string>?][]) {
      const r = await ask(c, query, search)
      expect(r.status, `${JSON.stringify(query)}: ${r.body}`).not.toBe(500)
      if (r.status !== 200) expect(r.body, JSON.stringify(query)).toMatch(/^Code: \d+\. DB::Exception: .*\n$/s)
    }
    // A value is a value: TSV prints its quote escaped, and nothing was run.
    expect((await ask(c, 'SELECT {v:String}', { param_v: "\\'; KILL QUERY WHERE 1 --" })).body).toBe("\\'; KILL QUERY WHERE 1 --\n")
  })

  it('keeps no state between clients: USE, ?database= and a failed statement last one request', async () => {
    expect((await ask(c, 'SELECT currentDatabase()', { database: 'system' })).body).toBe('system\n')
    expect((await ask(c, 'SELECT currentDatabase()')).body).toBe('actline\n')
    expect((await ask(c, 'USE system')).code).toBe('164')
    expect((await ask(c, 'SELECT currentDatabase()')).body).toBe('actline\n')
    expect((await ask(c, 'SELECT 1', { database: 'default' })).code).toBe('497')
    const failed = await ask(c, "SELECT 'the previous client'; SELECT 2")
    expect(failed.code).toBe('62')
    expect((await ask(c, 'SELECT 1')).body).toBe('1\n')
    // Many clients at once, each with its own database, settings and value: no answer carries another's.
    const answers = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const database = i % 2 ? 'system' : 'actline'
        const r = await ask(c, "SELECT {v:String} AS v, currentDatabase() AS d, getSetting('max_result_rows') AS r FORMAT JSONEachRow", { param_v: `client-${i}`, database, max_result_rows: String(1000 + i) })
        return { i, database, r }
      }),
    )
    for (const { i, database, r } of answers) {
      expect(r.status).toBe(200)
      const row = JSON.parse(r.body)
      expect([row.v, row.d, String(row.r)]).toEqual([`client-${i}`, database, String(1000 + i)])
    }
  })

  it('bounds what one query may cost: output bytes, and time, cancelled in the engine', async () => {
    const rss = () => process.memoryUsage.rss()
    const before = rss()
    let peak = before
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 10)
    const flood = await ask(c, "SELECT repeat('x', 500) FROM system.numbers LIMIT 1000000")
    clearInterval(sampler)
    expect([flood.status, flood.code]).toEqual([500, '396'])
    expect(flood.body).toMatch(/max_result_bytes/)
    // 501 MB asked for; the endpoint holds at most its 64 MiB cap and a chunk of the engine's.
    expect(peak - before).toBeLessThan(256 * 1024 * 1024)
    expect((await ask(c, 'SELECT number FROM numbers(100000)', { max_result_bytes: '100000' })).code).toBe('396')

    const cpu = () => {
      const u = process.cpuUsage()
      return (u.user + u.system) / 1e6
    }
    const started = Date.now()
    const slow = await ask(c, 'SELECT count() FROM system.numbers WHERE NOT ignore(sipHash64(number, number))', { max_execution_time: '1' })
    expect([slow.status, slow.code]).toEqual([408, '159'])
    expect(Date.now() - started).toBeLessThan(5_000)
    // Once answered, the engine has stopped: the process is idle again (a query left running would take a core).
    const cpu0 = cpu()
    await new Promise((r) => setTimeout(r, 2_000))
    expect(cpu() - cpu0).toBeLessThan(0.6)
    expect((await ask(c, 'SELECT 1')).body).toBe('1\n')
  })

  it('refuses a POST a web page could send (a simple content type) unless its credentials come in a header', async () => {
    const url = new URL(c.clickhouseHttp!)
    for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', undefined]) {
      const res = await fetch(url, { method: 'POST', body: new Blob(['SELECT 1']), ...(type && { headers: { 'content-type': type } }) })
      expect([res.status, res.headers.get('x-clickhouse-exception-code')], String(type)).toEqual([403, '497'])
      expect(await res.text()).toMatch(/needs its credentials in a header/)
    }
    const octet = await fetch(url, { method: 'POST', body: 'SELECT 1', headers: { 'content-type': 'application/octet-stream' } })
    expect(await octet.text()).toBe('1\n')
    const user = await fetch(url, { method: 'POST', body: 'SELECT 1', headers: { 'x-clickhouse-user': 'default' } })
    expect(await user.text()).toBe('1\n')
  })
})

describe('browsers and other sites on both listeners', () => {
  const dir = tempDir()
  let c: RunningCollector
  let page: Server
  let pageOrigin: string

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path, { server: { allowed_origins: ['https://grafana.example'], allowed_hosts: ['actline.internal'] } }))
    page = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'))
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r))
    const address = page.address()
    pageOrigin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  }, 120_000)

  afterAll(async () => {
    page?.close()
    await c?.collector.shutdown()
    dir.remove()
  })

  it('refuses what a page on another port makes Chromium send, in every mode, and the page learns nothing', async () => {
    const target = join(dir.path, 'from-browser.csv')
    const browser = await launch()
    try {
      const { page: tab } = await openPage(browser)
      const statuses: { url: string; status: number }[] = []
      tab.on('response', (r) => statuses.push({ url: r.url(), status: r.status() }))
      await tab.goto(pageOrigin)
      const results = await tab.evaluate(
        async ({ ch, main, target }) => {
          const out: string[] = []
          const attempt = async (what: string, run: () => Promise<Response>) => {
            try {
              const res = await run()
              out.push(`${what}: ${res.type} ${res.status} ${res.type === 'opaque' ? '' : await res.text()}`)
            } catch (err) {
              out.push(`${what}: ${(err as Error).name}`)
            }
          }
          await attempt('no-cors text', () => fetch(ch, { method: 'POST', mode: 'no-cors', body: `SELECT 'x' INTO OUTFILE '${target}'` }))
          await attempt('no-cors blob', () => fetch(ch, { method: 'POST', mode: 'no-cors', body: new Blob(['SELECT 1']) }))
          await attempt('cors read', () => fetch(`${ch}/?query=SELECT%201`))
          await attempt('no-cors get', () => fetch(`${ch}/?query=SELECT%201`, { mode: 'no-cors' }))
          await attempt('main ingest', () => fetch(`${main}/v1/activities`, { method: 'POST', mode: 'no-cors', body: '{"action":"x.y","source":"user"}' }))
          await attempt('main read', () => fetch(`${main}/api/v1/activities`))
          return out
        },
        { ch: c.clickhouseHttp!, main: c.url, target },
      )
      // The page sees failures or opaque answers only...
      for (const line of results) expect(line).toMatch(/: (TypeError|opaque 0 )$/)
      // ...and every answer it got was the listener's refusal (Chromium reports no response for a CORS read it blocked itself).
      const toCollector = statuses.filter((s) => s.url.startsWith(c.clickhouseHttp!) || s.url.startsWith(c.url))
      expect(toCollector.length).toBeGreaterThanOrEqual(4)
      for (const s of toCollector) expect(s.status, s.url).toBe(403)
    } finally {
      await browser.close()
    }
    expect(existsSync(target)).toBe(false)
    const stored = await ask(c, 'SELECT count() FROM activities')
    expect(stored.body).toBe('0\n')
  })

  it('refuses a name it does not serve in Host (DNS rebinding) and a foreign Origin, and takes its own', async () => {
    const { port: chPort } = new URL(c.clickhouseHttp!)
    const { port } = new URL(c.url)
    const rebound = await ask(c, 'SELECT 1', {}, { host: `attacker.example:${chPort}` })
    expect([rebound.status, rebound.code]).toEqual([403, '497'])
    expect(rebound.body).toMatch(/server\.allowed_hosts/)
    const foreign = await ask(c, 'SELECT 1', {}, { origin: 'http://attacker.example' })
    expect([foreign.status, foreign.code]).toEqual([403, '497'])
    for (const host of [`localhost:${chPort}`, `127.0.0.1:${chPort}`, `LOCALHOST:${chPort}`]) expect((await ask(c, 'SELECT 1', {}, { host })).body).toBe('1\n')

    const main = async (headers: Record<string, string>) => {
      const res = await send(new URL(`${c.url}/healthz`), 'GET', headers)
      return { status: res.status, body: JSON.parse(res.body) }
    }
    expect(await main({ host: `attacker.example:${port}` })).toMatchObject({ status: 403, body: { error: 'ACT_ERR_FORBIDDEN' } })
    expect(await main({ origin: pageOrigin })).toMatchObject({ status: 403, body: { error: 'ACT_ERR_FORBIDDEN' } })
    expect(await main({ 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'cors' })).toMatchObject({ status: 403 })
    expect((await main({ origin: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}` })).status).toBe(200)
    // A person following a link from another site still gets the monitor.
    expect((await send(new URL(`${c.url}/`), 'GET', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' })).status).toBe(200)
  })

  it('lets configured origins and host names through', async () => {
    const { port } = new URL(c.url)
    expect((await send(new URL(`${c.url}/healthz`), 'GET', { origin: 'https://grafana.example' })).status).toBe(200)
    expect((await send(new URL(`${c.url}/healthz`), 'GET', { host: `actline.internal:${port}` })).status).toBe(200)
    expect((await ask(c, 'SELECT 1', {}, { origin: 'https://grafana.example' })).body).toBe('1\n')
    expect((await ask(c, 'SELECT 1', {}, { origin: 'https://grafana.example.attacker.example' })).code).toBe('497')
  })
})

describe('failed authentications on the ClickHouse endpoint', () => {
  const dir = tempDir()
  let c: RunningCollector

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path, { auth: { ...authWithKeys(), max_failures: 5 } }))
  }, 120_000)

  afterAll(async () => {
    await c?.collector.shutdown()
    dir.remove()
  })

  it('are limited per address as on the main port: past max_failures even the right key waits', async () => {
    const withKey = (key: string) => createClient({ url: c.clickhouseHttp!, username: 'grafana', password: key })
    const good = withKey(KEYS.read)
    expect(await (await good.query({ query: 'SELECT 1 AS x', format: 'JSONEachRow' })).json()).toEqual([{ x: 1 }])
    for (let i = 0; i < 5; i++) {
      const r = await ask(c, 'SELECT 1', {}, { authorization: `Basic ${Buffer.from(`grafana:guess-${i}`).toString('base64')}` })
      expect([r.status, r.code]).toEqual([403, '516'])
    }
    const blocked = await ask(c, 'SELECT 1', {}, { authorization: `Basic ${Buffer.from(`grafana:${KEYS.read}`).toString('base64')}` })
    expect([blocked.status, blocked.code]).toEqual([429, '516'])
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0)
    await good.close()
  })
})
