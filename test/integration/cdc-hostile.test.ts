/**
 * Change-data capture tried as a hostile database user would, on the real
 * PostgreSQL server (PG_URL, wal_level = logical): values of every type
 * pgoutput sends that a store cannot hold as JavaScript parses them, context
 * messages forged or malformed by roles created for the test, and a
 * `schema.*` whose tables come and go without keys while capture runs. Every
 * committed change is stored once, with its key, table and operation; no
 * role but the app's can say who made one; no table makes the app's writes
 * fail.
 */
import { createHash } from 'node:crypto'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createScratchDatabase, eventually, PG_URL, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

const BIN = join(import.meta.dirname, '../../bin/actline.js')

describe.skipIf(!PG_URL)('change-data capture against hostile values, roles and schemas (server)', () => {
  const dir = tempDir()
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>>
  let admin: pg.Client
  let running: RunningCollector | undefined
  const slot = `actline_h_${process.pid}`
  const app = `actline_app_${process.pid}`
  const mallory = `actline_mallory_${process.pid}`
  const as = (role: string) => scratch.url.replace(/\/\/[^@/]*@/, `//${role}@`).replace(/\/\/(?![^/]*@)/, `//${role}@`)

  const trail = async (table: string) =>
    (await storesOf(running!.collector).postgres.query(`SELECT * FROM audit_log WHERE entity_type = $1 AND attributes ? 'cdc.slot' ORDER BY occurred_at, attributes->>'db.commit_lsn', (attributes->>'db.change_index')::int`, [table])).rows
  const metrics = () => fetch(`${running!.url}/metrics`).then((r) => r.text())
  const published = async () =>
    (await admin.query(`SELECT pubname, schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname LIKE $1 ORDER BY 2`, [`${slot}%`])).rows.map((r) => `${r.t} ${r.pubname === slot ? 'all' : 'inserts'}`)

  beforeAll(async () => {
    scratch = await createScratchDatabase()
    admin = new pg.Client({ connectionString: scratch.url })
    await admin.connect()
    for (const role of [app, mallory]) await admin.query(`CREATE ROLE ${role} LOGIN`)
    await admin.query(`CREATE TYPE mood AS ENUM ('ok', 'sad')`)
    await admin.query(`CREATE TYPE pair AS (a int, b text)`)
    await admin.query(`CREATE TABLE hostile (id int PRIMARY KEY, f8 float8, f4 real, num numeric, ts timestamptz, tsl timestamp, d date, b bytea, ints int[], floats float8[],
      comp pair, m mood, r int4range, j json, jb jsonb, iv interval, big text, note text)`)
    await admin.query(`CREATE TABLE longkey (k text PRIMARY KEY, v int)`)
    await admin.query(`CREATE TABLE ledger (id serial PRIMARY KEY, amount int NOT NULL)`)
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ledger TO ${app}, ${mallory}; GRANT USAGE ON SEQUENCE ledger_id_seq TO ${app}, ${mallory}`)
    await admin.query(`CREATE SCHEMA sch`)
    await admin.query(`CREATE TABLE sch.keyed (id int PRIMARY KEY, v int)`)
    await admin.query(`CREATE TABLE sch.keyless (a int)`)
    running = await startCollector(testConfig(join(dir.path, 'collector'), {
      receivers: {
        postgres_cdc: { enabled: true, url: scratch.url, tables: ['public.hostile', 'public.longkey', 'public.ledger', 'sch.*'], slot, publication: slot, session_context: true, context_roles: [app], reconcile_seconds: 1 },
      },
    }))
    await eventually('the stream to open', async () => (await metrics()).includes(`actline_cdc_connected{slot="${slot}"} 1`))
  }, 120_000)

  afterAll(async () => {
    await running?.collector.shutdown()
    await admin?.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [slot]).catch(() => {})
    await admin?.end()
    await scratch?.drop()
    // Roles are the cluster's: dropped once the database holding their grants is gone.
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    for (const role of [app, mallory]) await c.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {})
    await c.end()
    dir.remove()
  })

  it('stores every change of values no store holds as JavaScript reads them, exactly, once', async () => {
    const big = 'x'.repeat(10 * 1024 * 1024)
    const deep = `${'['.repeat(100)}${']'.repeat(100)}`
    await admin.query('BEGIN')
    await admin.query(
      `INSERT INTO hostile VALUES
        (1, 'NaN', '-Infinity', 'NaN', 'infinity', '-infinity', 'infinity', '\\x00ff', '{1,2,3}', '{NaN,1.5}', '(1,"x y")', 'sad', '[1,10)', $1, '{"ok":"😀"}', '1 day 02:00', $2, 'a'),
        (2, '-0', 'Infinity', '123456789012345678901234567890.123', '294276-12-31 23:59:59+00', '4713-01-01 00:00:00 BC', '5874897-12-31', '\\x', '{}', '{1.5}', NULL, 'ok', 'empty', $3, '{"n":1}', '-3 mons', 'small', 'b'),
        (3, 1.5, 2.5, 0, '2026-12-07 21:00:00.123456+00', '2026-12-07 21:00:00', '2026-12-07', NULL, NULL, NULL, NULL, NULL, NULL, '{"a":[1,2]}', NULL, NULL, NULL, 'c')`,
      ['{"s":"\\ud800","n":"\\u0000"}', big, deep],
    )
    await admin.query('COMMIT')
    // The 10 MB value is TOASTed and not changed: pgoutput does not send it.
    await admin.query(`UPDATE hostile SET note = 'edited' WHERE id = 1`)
    await admin.query(`DELETE FROM hostile WHERE id = 2`)
    await admin.query(`INSERT INTO longkey VALUES ($1, 1)`, ['k'.repeat(300)])

    await eventually('the six changes', async () => (await trail('hostile')).length + (await trail('longkey')).length >= 6, 60_000)
    const [one, two, three, update, del] = await trail('hostile')
    expect(one.details.new).toEqual({
      id: 1, f8: 'NaN', f4: '-Infinity', num: 'NaN', ts: 'infinity', tsl: '-infinity', d: 'infinity', b: '\\x00ff', ints: [1, 2, 3], floats: '{NaN,1.5}',
      comp: '(1,"x y")', m: 'sad', r: '[1,10)',
      // The document as it was written: its escapes name a lone surrogate and a NUL, which no store holds as characters.
      j: '{"s":"\\ud800","n":"\\u0000"}',
      jb: { ok: '😀' }, iv: '1 day 02:00:00',
      big: { type: 'text', bytes: big.length, sha256: createHash('sha256').update(big).digest('hex') },
      note: 'a',
    })
    expect(two.details.new).toEqual({
      id: 2, f8: '-0', f4: 'Infinity', num: '123456789012345678901234567890.123', ts: '294276-12-31 23:59:59+00', tsl: '4713-01-01 00:00:00 BC', d: '5874897-12-31',
      b: '\\x', ints: [], floats: [1.5], comp: null, m: 'ok', r: 'empty', j: deep, jb: { n: 1 }, iv: '-3 mons', big: 'small', note: 'b',
    })
    expect(three.details.new).toMatchObject({ f8: 1.5, f4: 2.5, num: '0', ts: '2026-12-07T21:00:00.123456Z', tsl: '2026-12-07T21:00:00', d: '2026-12-07', j: { a: [1, 2] } })
    expect(update.details).toEqual({ new: expect.objectContaining({ id: 1, note: 'edited', f8: 'NaN' }), unchanged: ['big'] })
    expect(update.details.new).not.toHaveProperty('big')
    expect([del.action, del.entity_id, del.details]).toEqual(['db.delete', '2', { old: { id: 2 } }])
    const [key] = await trail('longkey')
    expect(key.entity_id).toBe(`${'k'.repeat(160)}… sha256:${createHash('sha256').update('k'.repeat(300)).digest('hex')}`)
    expect(key.details.new.k).toBe('k'.repeat(300))

    const [ch] = await (await storesOf(running!.collector).clickhouse.query({ query: `SELECT count() AS n, uniqExact(id) AS ids FROM actline.activities WHERE attributes['cdc.slot'] = {slot:String} AND entity_type IN ('hostile', 'longkey')`, query_params: { slot }, format: 'JSONEachRow' })).json<Record<string, string>>()
    expect([Number(ch!.n), Number(ch!.ids)]).toEqual([6, 6])
    const m = await metrics()
    expect(m).toContain(`actline_cdc_changes_total{slot="${slot}",outcome="values_dropped"} 0`)
    expect(m).toContain(`actline_cdc_blocked{slot="${slot}"} 0`)
  }, 120_000)

  it('lets only the app say who made a change, and ignores what a session forges or garbles', async () => {
    const connect = async (role: string) => {
      const c = new pg.Client({ connectionString: as(role), application_name: `${role}-svc` })
      await c.connect()
      return c
    }
    const m = await connect(mallory)
    const a = await connect(app)
    try {
      // Not the app's role: it cannot emit a message at all, so it can claim nothing.
      await expect(m.query(`SELECT pg_logical_emit_message(true, 'actline', '{"actor_id":"ceo"}')`)).rejects.toMatchObject({ code: '42501' })
      await m.query(`INSERT INTO ledger (amount) VALUES (1)`)
      // The app's own messages, hostile: a lone surrogate, a wrong type, 5,000 characters. Its changes are stored, without them.
      for (const context of ['{"actor_id":"\\ud800evil"}', '{"actor_id":42}', JSON.stringify({ actor_id: 'a'.repeat(5000) })]) {
        await a.query('BEGIN')
        await a.query(`SELECT pg_logical_emit_message(true, 'actline', $1)`, [context])
        await a.query(`INSERT INTO ledger (amount) VALUES (2)`)
        await a.query(`UPDATE ledger SET amount = 3 WHERE amount = 2`)
        await a.query('COMMIT')
      }
      // A valid context naming a role, and a session message from inside the statement, after its trigger's.
      await a.query('BEGIN')
      await a.query(`SELECT pg_logical_emit_message(true, 'actline', '{"actor_id":"u-1","db_role":"postgres"}')`)
      await a.query(`INSERT INTO ledger (amount) SELECT 4 FROM (SELECT pg_logical_emit_message(true, 'actline_session', '{"db_role":"postgres","application_name":"forged","token":"guess"}')) s`)
      await a.query('COMMIT')
    } finally {
      await m.end()
      await a.end()
    }
    await eventually('the eight changes', async () => (await trail('ledger')).length >= 8, 60_000)
    const rows = (await trail('ledger')).map((r) => [r.details.new.amount, r.actor_id, r.attributes['db.user'], r.attributes['db.application_name']])
    expect(rows).toEqual([
      [1, null, mallory, `${mallory}-svc`],
      ...Array.from({ length: 3 }, () => [[2, null, app, `${app}-svc`], [3, null, app, `${app}-svc`]]).flat(),
      [4, 'u-1', app, `${app}-svc`],
    ])
    expect(await metrics()).toContain(`actline_cdc_context_ignored_total{slot="${slot}"} 4`)
    const config = join(dir.path, 'cdc.yaml')
    writeFileSync(config, `receivers: { postgres_cdc: { enabled: true, url: "${scratch.url}", tables: [public.ledger], slot: ${slot}, publication: ${slot} } }\n`)
    const check = await new Promise<string>((resolve) => execFile(process.execPath, [BIN, 'cdc', 'check', '--config', config], { encoding: 'utf8' }, (_err, stdout) => resolve(stdout)))
    expect(check).toContain(`ok    context messages: only ${app} and superusers may emit them`)
  }, 120_000)

  it('captures a schema whose tables come without keys, get one, or appear later, and never fails the app', async () => {
    expect(await published()).toEqual(expect.arrayContaining(['sch.keyed all', 'sch.keyless inserts']))
    await admin.query(`INSERT INTO sch.keyless VALUES (1)`)
    await admin.query(`UPDATE sch.keyless SET a = 2`)
    await admin.query(`DELETE FROM sch.keyless`)
    // Created while capture runs: writable at once, published within reconcile_seconds, still writable.
    await admin.query(`CREATE TABLE sch.later (a int)`)
    await admin.query(`CREATE TABLE sch.later_keyed (id int PRIMARY KEY, v int)`)
    await admin.query(`INSERT INTO sch.later VALUES (0); UPDATE sch.later SET a = 0`)
    await eventually('the new tables published', async () => (await published()).includes('sch.later inserts') && (await published()).includes('sch.later_keyed all'), 20_000)
    await admin.query(`INSERT INTO sch.later VALUES (1); UPDATE sch.later SET a = 5; DELETE FROM sch.later`)
    await admin.query(`INSERT INTO sch.later_keyed VALUES (1, 1); UPDATE sch.later_keyed SET v = 2`)
    // Given a replica identity: its updates are captured from then on, with the old row.
    await admin.query(`ALTER TABLE sch.keyless REPLICA IDENTITY FULL`)
    await eventually('sch.keyless moved to the full publication', async () => (await published()).includes('sch.keyless all'), 20_000)
    await admin.query(`INSERT INTO sch.keyless VALUES (7); UPDATE sch.keyless SET a = 8`)

    await eventually('the captured changes', async () => (await trail('keyless')).length >= 3 && (await trail('later')).length >= 1 && (await trail('later_keyed')).length >= 2, 30_000)
    expect((await trail('keyless')).map((r) => [r.action, r.details])).toEqual([
      ['db.insert', { new: { a: 1 } }],
      ['db.insert', { new: { a: 7 } }],
      ['db.update', { old: { a: 7 }, new: { a: 8 }, changed: ['a'] }],
    ])
    // Its row written before it was published may or may not be in (the bound is reconcile_seconds); its updates and deletes are not.
    const later = (await trail('later')).map((r) => [r.action, r.details])
    expect(later).toContainEqual(['db.insert', { new: { a: 1 } }])
    expect(later.every(([action]) => action === 'db.insert')).toBe(true)
    expect((await trail('later_keyed')).map((r) => [r.action, r.entity_id])).toEqual([['db.insert', '1'], ['db.update', '1']])
  }, 120_000)
})
