/**
 * The example orders service, under the register hook with transaction
 * tagging on, writing while receivers.postgres_cdc captures its table on the
 * real server (PG_URL): each write is in the audit trail once, from capture,
 * with the row's key, its values, the request's user and trace; the SDK's
 * activity of the same write stays in analytics as context. A write from a
 * plain client (psql, a migration) is captured too, with no user's name on
 * it but its login's and application_name (session_context).
 */
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killChildren, startOrdersExample, stopNodeProcess } from '../helpers/process.ts'
import { createScratchDatabase, eventually, PG_URL, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

afterAll(killChildren)

describe.skipIf(!PG_URL)('the example app writing while change-data capture runs (server)', () => {
  const dir = tempDir()
  const slot = `actline_app_${process.pid}`
  const service = `orders-cdc-${Date.now().toString(36)}`
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>>
  let client: pg.Client
  let collector: RunningCollector
  let app: Awaited<ReturnType<typeof startOrdersExample>>

  beforeAll(async () => {
    scratch = await createScratchDatabase()
    client = new pg.Client({ connectionString: scratch.url, application_name: 'migration-42' })
    await client.connect()
    // The app's own DDL (it runs CREATE TABLE IF NOT EXISTS at start): the publication needs the table first.
    await client.query(`CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric(12, 2) NOT NULL, status text NOT NULL DEFAULT 'new', updated_at timestamptz NOT NULL DEFAULT now())`)
    collector = await startCollector(testConfig(join(dir.path, 'collector'), {
      receivers: { postgres_cdc: { enabled: true, url: scratch.url, tables: ['public.orders'], slot, publication: slot, session_context: true } },
    }))
    await eventually('the stream to open', async () => (await fetch(`${collector.url}/metrics`).then((r) => r.text())).includes(`actline_cdc_connected{slot="${slot}"} 1`))
    app = await startOrdersExample({ DATABASE_URL: scratch.url, ACTLINE_ENDPOINT: collector.url, OTEL_SERVICE_NAME: service, ACTLINE_TAG_TRANSACTIONS: 'true' })
  }, 180_000)

  afterAll(async () => {
    await stopNodeProcess(app)
    await collector?.collector.shutdown()
    await client?.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [slot]).catch(() => {})
    await client?.end()
    await scratch?.drop()
    dir.remove()
  })

  it('audits each write once, from capture, with the key, the values, the user and the trace', async () => {
    const headers = { 'content-type': 'application/json', 'x-user-id': 'u-42' }
    const created = await fetch(`${app.url}/orders`, { method: 'POST', headers, body: JSON.stringify({ customer: 'ada', total: 12.5 }) })
    expect(created.status).toBe(201)
    const { id } = (await created.json()) as { id: number }
    expect((await fetch(`${app.url}/orders/${id}`, { method: 'PATCH', headers, body: JSON.stringify({ status: 'paid' }) })).status).toBe(200)
    // A migration, from psql: no SDK, no message.
    await client.query(`UPDATE orders SET total = total + 1 WHERE id = $1`, [id])
    expect((await fetch(`${app.url}/orders/${id}`, { method: 'DELETE', headers: { 'x-user-id': 'u-42' } })).status).toBe(204)

    const { postgres, clickhouse } = storesOf(collector.collector)
    const trail = async () =>
      (await postgres.query(`SELECT action, entity_id, actor_id, trace_id, details, attributes ? 'cdc.slot' AS captured, attributes->>'db.user' AS db_user, attributes->>'db.application_name' AS app_name FROM audit_log WHERE entity_type = 'orders' ORDER BY occurred_at, (attributes->>'db.change_index')::int`)).rows
    const requests = async () =>
      (await (await clickhouse.query({ query: `SELECT action, trace_id FROM actline.activities WHERE service = {s:String} AND action LIKE 'api.%' ORDER BY timestamp`, query_params: { s: service }, format: 'JSONEachRow' })).json()) as { action: string; trace_id: string }[]
    // The SDK's copies reach the log too: wait for them, so a second audit row would be there to see.
    await eventually('the app activities', async () => (await requests()).length >= 3, 30_000)
    await eventually('four row changes in the audit trail', async () => (await trail()).length >= 4, 30_000)
    await new Promise((r) => setTimeout(r, 1500))
    const rows = await trail()
    const [post, patch, del] = await requests()
    expect(rows.map((r) => [r.action, r.entity_id, r.actor_id, r.trace_id, r.captured])).toEqual([
      ['db.insert', String(id), 'u-42', post!.trace_id, true],
      ['db.update', String(id), 'u-42', patch!.trace_id, true],
      ['db.update', String(id), null, null, true],
      ['db.delete', String(id), 'u-42', del!.trace_id, true],
    ])
    // session_context: which login wrote, the migration's application_name too; the app's pool sets none.
    expect(rows.map((r) => [r.db_user, r.app_name])).toEqual([['postgres', null], ['postgres', null], ['postgres', 'migration-42'], ['postgres', null]])
    expect(rows[0].details.new).toMatchObject({ id, customer: 'ada', total: '12.50', status: 'new' })
    // numeric is exact: its text, as the server gives it.
    expect(rows[1].details.new).toMatchObject({ id, status: 'paid' })
    expect(rows[2].details.new).toMatchObject({ id, total: '13.50' })

    // Analytics holds both paths' activities of the app's writes; the SDK's are the context.
    const copies = (await (await clickhouse.query({
      query: `SELECT action, countIf(attributes['cdc.slot'] != '') AS captured, countIf(service = {s:String}) AS sdk FROM actline.activities WHERE entity_type = 'orders' GROUP BY action ORDER BY action`,
      query_params: { s: service }, format: 'JSONEachRow',
    })).json()) as { action: string; captured: string; sdk: string }[]
    expect(copies.map((c) => [c.action, Number(c.captured), Number(c.sdk)])).toEqual([['db.delete', 1, 1], ['db.insert', 1, 1], ['db.update', 2, 1]])
  }, 120_000)

  it('leaves no transaction of the app open and no write uncommitted when its result arrives', async () => {
    // The register hook wrapped each autocommit write in BEGIN ... COMMIT: the rows are there, and nothing idles in a transaction.
    const created = await fetch(`${app.url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ customer: 'bob', total: 1 }) })
    const { id } = (await created.json()) as { id: number }
    expect((await client.query('SELECT customer FROM orders WHERE id = $1', [id])).rows).toEqual([{ customer: 'bob' }])
    const idle = await client.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`)
    expect(idle.rows[0].n).toBe(0)
  })

  it('puts the session_context trigger on the captured table, and takes it off when the option is', async () => {
    const triggers = async () => (await client.query(`SELECT tgrelid::regclass::text AS t FROM pg_trigger WHERE tgname = 'actline_session_context'`)).rows
    expect(await triggers()).toEqual([{ t: 'orders' }])
    await collector.collector.shutdown()
    collector = await startCollector(testConfig(join(dir.path, 'collector-2'), {
      receivers: { postgres_cdc: { enabled: true, url: scratch.url, tables: ['public.orders'], slot, publication: slot } },
    }))
    expect(await triggers()).toEqual([])
  }, 60_000)
})
