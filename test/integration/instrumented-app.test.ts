/**
 * The trigger replacement, end to end with real parts: the example orders
 * service runs as its own process under `node --import
 * @actline/instrumentation/register`, against a real PostgreSQL (PGlite over
 * pglite-socket, and the server at PG_URL when set), exporting to a real
 * collector with embedded stores. What it did must be in ClickHouse and in
 * the audit trail.
 */
import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { killChildren, startOrdersExample, stopNodeProcess } from '../helpers/process.ts'
import {
  PG_URL, createScratchDatabase, eventually, startCollector, storesOf, tempDir, testConfig, type PgMode, type RunningCollector,
} from '../helpers/stores.ts'

afterAll(killChildren)

const modes: PgMode[] = PG_URL ? ['embedded', 'server'] : ['embedded']

interface Row {
  action: string
  source: string
  category: string
  status: string
  severity: string
  entity_type: string
  entity_id: string
  actor_id: string
  trace_id: string
  service: string
  details: string
  attributes: Record<string, string>
}

describe.each(modes)('an app instrumented by the register hook, on %s PostgreSQL', (mode) => {
  const dir = tempDir()
  let collector: RunningCollector
  let appDb: { stop(): Promise<void> } | undefined
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined
  let app: Awaited<ReturnType<typeof startOrdersExample>>
  let databaseUrl: string
  const service = `orders-${mode}-${Date.now().toString(36)}`

  beforeAll(async () => {
    collector = await startCollector(testConfig(`${dir.path}/collector`))
    if (mode === 'server') {
      scratch = await createScratchDatabase()
      databaseUrl = scratch.url
    } else {
      // The app's own database, served over TCP as a server would be (the
      // collector's embedded PostgreSQL listens on nothing).
      const db = await PGlite.create(`${dir.path}/app-db`)
      const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0 })
      await server.start()
      appDb = { stop: async () => { await server.stop(); await db.close() } }
      databaseUrl = `postgres://postgres@${server.getServerConn()}/postgres`
    }
    app = await startOrdersExample({ DATABASE_URL: databaseUrl, ACTLINE_ENDPOINT: collector.url, OTEL_SERVICE_NAME: service })
  }, 180_000)

  afterAll(async () => {
    await stopNodeProcess(app)
    await collector?.collector.shutdown()
    await appDb?.stop()
    await scratch?.drop()
    dir.remove()
  })

  async function activities(count: number, from = service): Promise<Row[]> {
    const { clickhouse } = storesOf(collector.collector)
    const query = async () =>
      (await (
        await clickhouse.query({
          query: `SELECT action, source, category, status, severity, entity_type, entity_id, actor_id, trace_id, service, details, attributes
                  FROM actline.activities WHERE service = {service:String} ORDER BY timestamp, action`,
          query_params: { service: from },
          format: 'JSONEachRow',
        })
      ).json()) as Row[]
    await eventually(`${count} activities from ${from}`, async () => (await query()).length >= count, 30_000)
    return query()
  }

  it('records INSERT, UPDATE and DELETE as database activities on the table, and each request as an api activity in the same trace', async () => {
    const headers = { 'content-type': 'application/json', 'x-user-id': 'u-42' }
    const created = await fetch(`${app.url}/orders`, { method: 'POST', headers, body: JSON.stringify({ customer: 'ada', total: 12.5 }) })
    expect(created.status).toBe(201)
    const { id } = (await created.json()) as { id: number }
    expect((await fetch(`${app.url}/orders/${id}`, { method: 'PATCH', headers, body: JSON.stringify({ status: 'paid' }) })).status).toBe(200)
    expect((await fetch(`${app.url}/orders/${id}`)).status).toBe(200)
    expect((await fetch(`${app.url}/orders/${id}`, { method: 'DELETE', headers: { 'x-user-id': 'u-42' } })).status).toBe(204)

    // 4 requests, 3 writes, 1 explicit logUserAction; the SELECT is no activity.
    const rows = await activities(8)
    const by = (action: string) => rows.filter((r) => r.action === action)
    expect(rows.map((r) => r.action).sort()).toEqual(
      ['api.delete', 'api.get', 'api.patch', 'api.post', 'db.delete', 'db.insert', 'db.update', 'order.created'].sort(),
    )

    for (const op of ['insert', 'update', 'delete']) {
      expect(by(`db.${op}`)[0]).toMatchObject({
        source: 'database', category: 'data_modification', status: 'success', entity_type: 'orders', actor_id: 'u-42',
      })
      expect(by(`db.${op}`)[0]!.attributes['db.system']).toBe('postgresql')
    }
    const post = by('api.post')[0]!
    expect(post).toMatchObject({ category: 'api', status: 'success', entity_type: 'http_route', entity_id: '/orders' })
    expect(post.attributes['http.response.status_code']).toBe('201')
    expect(by('api.patch')[0]!.entity_id).toBe('/orders/:id')
    // Who called the endpoint: what the handler set with withActivityContext, though the request began before it.
    expect(post.actor_id).toBe('u-42')
    expect(by('api.delete')[0]!.actor_id).toBe('u-42')
    expect(by('api.get')[0]!.actor_id).toBe('')

    // The correlation triggers never had: the write, the request and the business event share one trace.
    expect(post.trace_id).toMatch(/^[0-9a-f]{32}$/)
    expect(by('db.insert')[0]!.trace_id).toBe(post.trace_id)
    expect(by('order.created')[0]).toMatchObject({ trace_id: post.trace_id, source: 'user', actor_id: 'u-42', entity_id: String(id) })
    expect(by('db.update')[0]!.trace_id).toBe(by('api.patch')[0]!.trace_id)
    expect(by('db.update')[0]!.trace_id).not.toBe(post.trace_id)
  })

  it('names the row each write changed and what it wrote, read from the statement and what it returned', async () => {
    const rows = await activities(8)
    const db = (op: string) => rows.find((r) => r.action === `db.${op}`)!
    const id = db('insert').entity_id
    // INSERT ... VALUES ($1, $2) RETURNING id: the key came back from the server, the values from the parameters.
    expect(id).toMatch(/^\d+$/)
    expect(JSON.parse(db('insert').details)).toEqual({ new: { customer: 'ada', total: 12.5, id: Number(id) } })
    // UPDATE ... SET status = $1, updated_at = now() WHERE id = $2: the key from WHERE, now() is not a value the app sent.
    expect(db('update').entity_id).toBe(id)
    expect(JSON.parse(db('update').details)).toEqual({ new: { status: 'paid' } })
    // DELETE ... WHERE id = $1: the key, nothing else is known.
    expect(db('delete').entity_id).toBe(id)
  })

  it('puts the data changes in the audit trail, which is what the triggers wrote', async () => {
    const { postgres } = storesOf(collector.collector)
    await eventually('the three writes in audit_log', async () => {
      const { rows } = await postgres.query(`SELECT count(*)::int AS n FROM audit_log WHERE service = $1 AND source = 'database'`, [service])
      return rows[0].n >= 3
    })
    const { rows } = await postgres.query(
      `SELECT action, entity_type, actor_id FROM audit_log WHERE service = $1 AND source = 'database' ORDER BY occurred_at`,
      [service],
    )
    expect(rows).toEqual([
      { action: 'db.insert', entity_type: 'orders', actor_id: 'u-42' },
      { action: 'db.update', entity_type: 'orders', actor_id: 'u-42' },
      { action: 'db.delete', entity_type: 'orders', actor_id: 'u-42' },
    ])
  })

  it('instruments a CommonJS job the same way, and sends what is queued when it exits on its own', async () => {
    const res = await fetch(`${app.url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ customer: 'bob', total: 3 }) })
    expect(res.status).toBe(201)
    // The service stops first: PGlite over pglite-socket serves one connection at a time.
    app.child.kill('SIGTERM')
    expect(await app.exited).toBe(0)
    const job = `${service}-job`
    const child = spawn(process.execPath, ['--import', '@actline/instrumentation/register', 'examples/orders/cancel-stale.cjs'], {
      env: { ...process.env, DATABASE_URL: databaseUrl, ACTLINE_ENDPOINT: collector.url, OTEL_SERVICE_NAME: job, STALE_AFTER: '0 seconds' },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    const code = await new Promise((resolve) => child.once('exit', resolve))
    expect(code).toBe(0)
    expect(JSON.parse(out).canceled).toBeGreaterThanOrEqual(1)
    // Exited before any flush interval passed: only the beforeExit flush can have sent it.
    const [update] = await activities(1, job)
    expect(update).toMatchObject({ action: 'db.update', source: 'database', entity_type: 'orders', status: 'success', entity_id: '' })
    // A WHERE that is no key names no row: one activity for the statement, with what it set and how many rows it hit.
    expect(JSON.parse(update!.details)).toEqual({ new: { status: 'canceled' }, row_count: JSON.parse(out).canceled })
  })
})
