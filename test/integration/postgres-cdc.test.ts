/**
 * receivers.postgres_cdc on the real PostgreSQL server (PG_URL, wal_level =
 * logical: .ci/run sets it): writes made with a plain client, as psql or a
 * migration would, arrive in both stores once each, with the row's key, its
 * old and new values (sensitive columns redacted), the transaction id and
 * the commit's LSN; a table without a key has its inserts captured and its
 * updates and deletes left working. PGlite has no logical replication: the SDK is its audit path.
 */
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { tagTransaction, withActivityContext } from '../../instrumentation/index.ts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createScratchDatabase, eventually, PG_URL, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

const BIN = join(import.meta.dirname, '../../bin/actline.js')

/** `actline cdc ...` as a process, asynchronously (the collector under test runs in this one). */
function cdcCli(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, 'cdc', ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  )
}

describe.skipIf(!PG_URL)('receivers.postgres_cdc (server)', () => {
  const dir = tempDir()
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>>
  let client: pg.Client
  let running: RunningCollector | undefined
  const slot = `actline_t_${process.pid}`
  const cdc = (url: string, tables: string[]) => ({ enabled: true, url, tables, slot, publication: slot })

  /** The captured activities of a table, from the audit trail. */
  const trail = async (table: string) =>
    (await storesOf(running!.collector).postgres.query(`SELECT * FROM audit_log WHERE entity_type = $1 AND attributes ? 'cdc.slot' ORDER BY occurred_at, (attributes->>'db.change_index')::int`, [table])).rows

  beforeAll(async () => {
    scratch = await createScratchDatabase()
    client = new pg.Client({ connectionString: scratch.url })
    await client.connect()
    expect((await client.query('SHOW wal_level')).rows[0].wal_level, 'the server needs wal_level = logical (ALTER SYSTEM SET wal_level = logical, then restart)').toBe('logical')
    await client.query(`CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL, password_hash text, api_key text, balance int NOT NULL DEFAULT 0)`)
    await client.query(`ALTER TABLE accounts REPLICA IDENTITY FULL`)
    await client.query(`CREATE TABLE line_items (order_id int, line int, sku text, PRIMARY KEY (order_id, line))`)
    await client.query(`CREATE TABLE scratchpad (note text)`)
  }, 120_000)

  afterAll(async () => {
    await running?.collector.shutdown()
    // A slot left behind keeps the server's WAL forever, and keeps its database from being dropped.
    await client?.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [slot]).catch(() => {})
    await client?.end()
    await scratch?.drop()
    dir.remove()
  })

  it('captures the inserts of a table without a key, and its UPDATEs and DELETEs keep working', async () => {
    const collector = await startCollector(testConfig(join(dir.path, 'keyless'), { receivers: { postgres_cdc: cdc(scratch.url, ['public.accounts', 'public.scratchpad']) } }))
    try {
      await eventually('the stream to open', async () => (await fetch(`${collector.url}/metrics`).then((r) => r.text())).includes(`actline_cdc_connected{slot="${slot}"} 1`))
      await client.query(`INSERT INTO scratchpad VALUES ('first'), ('second')`)
      // Published for UPDATE and DELETE, a table without replica identity refuses both (55000).
      await client.query(`UPDATE scratchpad SET note = 'edited' WHERE note = 'first'`)
      await client.query(`DELETE FROM scratchpad WHERE note = 'second'`)
      const rows = async () => (await storesOf(collector.collector).postgres.query(`SELECT action, details, attributes FROM audit_log WHERE entity_type = 'scratchpad' ORDER BY (attributes->>'db.change_index')::int`)).rows
      await eventually('the two inserts', async () => (await rows()).length >= 2, 30_000)
      const captured = await rows()
      expect(captured.map((r) => [r.action, r.details])).toEqual([['db.insert', { new: { note: 'first' } }], ['db.insert', { new: { note: 'second' } }]])
      expect(captured[0].attributes['cdc.no_key']).toBe('true')
      const pubs = (await client.query(`SELECT pubname, tablename, pubupdate FROM pg_publication_tables JOIN pg_publication USING (pubname) WHERE pubname LIKE $1 ORDER BY 1, 2`, [`${slot}%`])).rows
      expect(pubs).toEqual([{ pubname: slot, tablename: 'accounts', pubupdate: true }, { pubname: `${slot}_inserts`, tablename: 'scratchpad', pubupdate: false }])
    } finally {
      await collector.collector.shutdown()
    }
  }, 90_000)

  it('captures writes made without the SDK, once each, with key, old and new values, transaction and LSN', async () => {
    running = await startCollector(testConfig(join(dir.path, 'collector'), { receivers: { postgres_cdc: cdc(scratch.url, ['public.accounts', 'public.line_items']) } }))
    await eventually('the stream to open', async () => (await fetch(`${running!.url}/metrics`).then((r) => r.text())).includes(`actline_cdc_connected{slot="${slot}"} 1`))

    await client.query('BEGIN')
    await client.query(`INSERT INTO accounts (email, password_hash, api_key) VALUES ('ada@example.com', 'bcrypt$abc', 'k-123')`)
    await client.query(`INSERT INTO line_items VALUES (7, 1, 'sku-1'), (7, 2, 'sku-2')`)
    const xid = (await client.query('SELECT txid_current()::text AS x')).rows[0].x
    await client.query('COMMIT')
    await client.query(`UPDATE accounts SET balance = 50, password_hash = 'bcrypt$def' WHERE email = 'ada@example.com'`)
    await client.query(`DELETE FROM line_items WHERE order_id = 7 AND line = 2`)
    await client.query(`DELETE FROM accounts`)

    await eventually('six row changes in the audit trail', async () => (await trail('accounts')).length + (await trail('line_items')).length >= 6, 30_000)
    const accounts = await trail('accounts')
    expect(accounts.map((a) => a.action)).toEqual(['db.insert', 'db.update', 'db.delete'])
    for (const a of accounts) expect(a).toMatchObject({ source: 'database', category: 'data_modification', entity_id: '1' })
    const [insert, update, del] = accounts
    expect(insert.details).toEqual({ new: { id: 1, email: 'ada@example.com', password_hash: '[redacted]', api_key: '[redacted]', balance: 0 } })
    expect(insert.attributes).toMatchObject({ 'db.schema': 'public', 'db.xid': xid, 'db.replica_identity': 'full', 'cdc.slot': slot })
    expect(insert.attributes['db.commit_lsn']).toMatch(/^[0-9A-F]{8}\/[0-9A-F]{8}$/)
    // REPLICA IDENTITY FULL: the old row too, and which columns changed (a redacted one says it changed, not what to).
    expect(update.details).toEqual({
      old: { id: 1, email: 'ada@example.com', password_hash: '[redacted]', api_key: '[redacted]', balance: 0 },
      new: { id: 1, email: 'ada@example.com', password_hash: '[redacted]', api_key: '[redacted]', balance: 50 },
      changed: ['password_hash', 'balance'],
    })
    expect(del.details.old).toMatchObject({ email: 'ada@example.com', balance: 50 })

    // A composite key is the entity id as a JSON array; without FULL identity a delete knows the key only.
    const items = await trail('line_items')
    expect(items.map((a) => [a.action, a.entity_id])).toEqual([
      ['db.insert', '[7,1]'],
      ['db.insert', '[7,2]'],
      ['db.delete', '[7,2]'],
    ])
    expect(items[2].details).toEqual({ old: { order_id: 7, line: 2 } })

    // The same rows in ClickHouse, each once; no value of a redacted column in either store.
    const rs = await storesOf(running.collector).clickhouse.query({ query: `SELECT count() AS n, uniqExact(id) AS ids, countIf(position(details, 'bcrypt') > 0 OR position(details, 'k-123') > 0) AS leaked FROM actline.activities WHERE attributes['cdc.slot'] = {slot:String}`, query_params: { slot }, format: 'JSONEachRow' })
    const [ch] = await rs.json<Record<string, string | number>>()
    expect(Object.fromEntries(Object.entries(ch!).map(([k, v]) => [k, Number(v)]))).toEqual({ n: 6, ids: 6, leaked: 0 })
    const leaked = await storesOf(running.collector).postgres.query(`SELECT count(*)::int AS n FROM audit_log WHERE details::text LIKE '%bcrypt%' OR details::text LIKE '%k-123%'`)
    expect(leaked.rows[0].n).toBe(0)

    // The slot is confirmed past what is stored: /metrics shows how much WAL it holds.
    await eventually('the slot lag on /metrics', async () => /actline_cdc_slot_lag_bytes\{slot="[^"]+"\} \d+/.test(await fetch(`${running!.url}/metrics`).then((r) => r.text())), 20_000)
    const metrics = await fetch(`${running.url}/metrics`).then((r) => r.text())
    expect(metrics).toContain(`actline_cdc_changes_total{slot="${slot}",outcome="stored"} 6`)
    expect(metrics).toContain(`actline_cdc_transactions_total{slot="${slot}"} 4`)
    const ready = await fetch(`${running.url}/readyz`).then((r) => r.json())
    expect(ready.status).toBe('ready')
    expect(ready.warnings).toBeUndefined()
  }, 90_000)

  it('stitches who did it, from the actline message inside the transaction, onto its changes', async () => {
    const trace = 'ab'.repeat(16)
    await client.query('BEGIN')
    await client.query(`SELECT pg_logical_emit_message(true, 'actline', $1)`, [JSON.stringify({ actor_id: 'u-42', tenant_id: 'acme', trace_id: trace, correlation_id: 'req-7', role: 'ignored' })])
    await client.query(`INSERT INTO accounts (email) VALUES ('grace@example.com')`)
    await client.query(`UPDATE accounts SET balance = 5 WHERE email = 'grace@example.com'`)
    await client.query('COMMIT')
    // The SDK's helper sends the same message from the activity context.
    await withActivityContext({ actorId: 'u-7', tenantId: 'globex' }, async () => {
      await client.query('BEGIN')
      await tagTransaction(client)
      await client.query(`INSERT INTO accounts (email) VALUES ('grace-sdk@example.com')`)
      await client.query('COMMIT')
    })
    // Not transactional, or in a transaction rolled back: no context for anyone.
    await client.query(`SELECT pg_logical_emit_message(false, 'actline', '{"actor_id":"u-stray"}')`)
    await client.query('BEGIN')
    await client.query(`SELECT pg_logical_emit_message(true, 'actline', '{"actor_id":"u-rolled-back"}')`)
    await client.query('ROLLBACK')
    await client.query(`INSERT INTO accounts (email) VALUES ('nobody@example.com')`)
    await eventually('the four changes', async () => (await trail('accounts')).filter((a) => /grace|nobody/.test(JSON.stringify(a.details))).length >= 4, 30_000)
    const rows = (await trail('accounts')).filter((a) => /grace|nobody/.test(JSON.stringify(a.details)))
    expect(rows.map((a) => [a.action, a.actor_id, a.tenant_id, a.trace_id, a.correlation_id])).toEqual([
      ['db.insert', 'u-42', 'acme', trace, 'req-7'],
      ['db.update', 'u-42', 'acme', trace, 'req-7'],
      ['db.insert', 'u-7', 'globex', null, null],
      ['db.insert', null, null, null, null],
    ])
  }, 60_000)

  it('actline cdc status and check say what the slot holds and what each table gives', async () => {
    const config = join(dir.path, 'cdc.yaml')
    writeFileSync(config, `receivers: { postgres_cdc: { enabled: true, url: "${scratch.url}", tables: [public.accounts, public.line_items, public.scratchpad], slot: ${slot}, publication: ${slot} } }\n`)
    const status = await cdcCli('status', '--config', config, '--json')
    expect(status.status, status.stderr).toBe(0)
    const s = JSON.parse(status.stdout)
    expect(s.slot).toMatchObject({ slot_name: slot, plugin: 'pgoutput', active: true })
    expect(s.publication.tables).toEqual(['public.accounts', 'public.line_items'])
    const check = await cdcCli('check', '--config', config)
    expect(check.status, check.stdout).toBe(0)
    expect(check.stdout).toContain('ok    public.accounts: key id; old values: the whole row (REPLICA IDENTITY FULL)')
    expect(check.stdout).toContain('ok    public.line_items: key order_id, line; old values: the key only (order_id, line); ALTER TABLE "public"."line_items" REPLICA IDENTITY FULL for whole old rows')
    expect(check.stdout).toContain('warn  public.scratchpad: no primary key or replica identity: inserts captured, updates and deletes not (publishing them would make them fail); to capture them: ALTER TABLE "public"."scratchpad" REPLICA IDENTITY FULL, or add a primary key')
    expect(check.stdout, check.stdout).toContain('ok    context messages: only superusers may emit them')
    // A slot a collector reads is not dropped under it.
    const drop = await cdcCli('drop-slot', '--config', config, '--yes')
    expect(drop.status).toBe(1)
    expect(drop.stdout.trim()).toMatch(new RegExp(`^slot ${slot} is being read by pid \\d+: stop that collector first$`))
  }, 60_000)
})
