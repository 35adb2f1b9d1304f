/**
 * `actline triggers backfill`: the fixture's legacy audit rows, copied into
 * a real collector on embedded stores through its intake. Each row lands
 * once in ClickHouse and the audit trail, however often the backfill runs,
 * and after a kill -9 half way the next run resumes and still stores each
 * row once.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backfillId } from '../../toolkit/triggers/backfill.ts'
import type { PostgresTarget } from '../helpers/postgres-target.ts'
import { closedPort } from '../helpers/ports.ts'
import { eventually, PG_URL, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'
import { openFixture, triggersCli as cli } from './trigger-fixture.ts'

const BIN = join(import.meta.dirname, '../../bin/actline.js')
/** Rows of history, beside the ones the fixture's triggers write: enough pages that a kill lands half way. */
const HISTORY = 40_000

describe.each(PG_URL ? (['pglite', 'server'] as const) : (['pglite'] as const))('actline triggers backfill (%s legacy database)', (kind) => {
  const dir = tempDir()
  let target: PostgresTarget
  let client: pg.Client
  let db: string
  let running: RunningCollector
  let database: string
  const checkpoint = (name: string) => join(dir.path, `${name}.json`)

  /** What the stores hold of the backfill: rows, distinct ids. */
  const stored = async () => {
    const { clickhouse, postgres } = storesOf(running.collector)
    const rs = await clickhouse.query({ query: `SELECT count() AS n, uniqExact(id) AS ids FROM actline.activities WHERE attributes['legacy.table'] = 'public.audit_logs'`, format: 'JSONEachRow' })
    const [ch] = await rs.json<{ n: string; ids: string }>()
    const { rows } = await postgres.query(`SELECT count(*)::int AS n FROM audit_log WHERE attributes->>'legacy.table' = 'public.audit_logs'`)
    return { clickhouse: Number(ch!.n), clickhouseIds: Number(ch!.ids), postgres: rows[0].n as number }
  }
  const storedAll = (n: number) =>
    eventually(`${n} backfilled rows in both stores`, async () => {
      const s = await stored()
      return s.clickhouse >= n && s.postgres >= n
    }, 60_000)

  beforeAll(async () => {
    ;({ target, client, db } = await openFixture(join(dir.path, 'pg'), kind))
    database = (await client.query('SELECT current_database() AS d')).rows[0].d
    // Writes the triggers record as they would in production...
    await client.query(`INSERT INTO users (email) VALUES ('ada@example.com'), ('grace@example.com')`)
    await client.query(`UPDATE users SET email = 'ada@example.org' WHERE id = 1`)
    await client.query(`DELETE FROM users WHERE id = 2`)
    // ...and a history of them, as years of triggers leave it.
    await client.query(
      `INSERT INTO audit_logs (table_name, operation, row_id, old_data, new_data, changed_at)
       SELECT 'users', (ARRAY['INSERT','UPDATE','DELETE'])[1 + i % 3], (i % 997)::text, jsonb_build_object('email', 'old' || i), jsonb_build_object('email', 'new' || i),
              now() - interval '30 days' + i * interval '10 milliseconds'
       FROM generate_series(1, $1) AS i`,
      [HISTORY],
    )
    running = await startCollector(testConfig(join(dir.path, 'collector')))
  }, 180_000)

  afterAll(async () => {
    await running?.collector.shutdown()
    await client?.end()
    await target?.stop()
    dir.remove()
  })

  it('copies every legacy row as the db activity the SDK would send, once however often it runs', async () => {
    const legacy = (await client.query(`SELECT count(*)::int AS n FROM audit_logs`)).rows[0].n as number
    expect(legacy).toBe(HISTORY + 4)
    const file = checkpoint('twice')
    const first = await cli('backfill', '--db', db, '--legacy-table', 'audit_logs', '--collector', running.url, '--checkpoint', file)
    expect(first.status, first.stderr).toBe(0)
    expect(first.stdout).toMatch(new RegExp(`^backfilled ${legacy.toLocaleString('en-US')} rows of public.audit_logs into ${running.url} in [\\d.]+ s \\([\\d,]+ rows/s\\)`))
    expect(first.stderr).toMatch(/backfill \[#{30}\] [\d,]+\/[\d,]+ rows, [\d,]+ rows\/s, ETA 0 s/)
    await storedAll(legacy)

    // The update of ada, as the trigger wrote it, is the activity of that write.
    const ada = (await client.query(`SELECT id, changed_at FROM audit_logs WHERE operation = 'UPDATE' AND row_id = '1' AND table_name = 'users' ORDER BY id LIMIT 1`)).rows[0]
    const id = backfillId({ database, table: 'public.audit_logs' }, String(ada.id), ada.changed_at.getTime())
    const { rows } = await storesOf(running.collector).postgres.query(`SELECT * FROM audit_log WHERE id = $1`, [id])
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ source: 'database', action: 'db.update', entity_type: 'users', entity_id: '1' })
    expect(rows[0].occurred_at.getTime()).toBe(ada.changed_at.getTime())
    expect(rows[0].details).toMatchObject({ old: { email: 'ada@example.com' }, new: { email: 'ada@example.org' } })

    // A second run finds the checkpoint at the end and sends nothing.
    const second = await cli('backfill', '--db', db, '--legacy-table', 'audit_logs', '--collector', running.url, '--checkpoint', file)
    expect(second.status, second.stderr).toBe(0)
    expect(second.stdout).toContain(`nothing to send: every row of public.audit_logs up to key ${legacy} is stored (${legacy.toLocaleString('en-US')} rows;`)
    // Starting over re-sends every row: their ids make them the same rows again.
    const again = await cli('backfill', '--db', db, '--legacy-table', 'audit_logs', '--collector', running.url, '--checkpoint', file, '--restart', '--json')
    expect(again.status, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ table: 'public.audit_logs', sent: legacy, stored_total: legacy, rejected_total: 0 })
    await new Promise((r) => setTimeout(r, 1500))
    await storedAll(legacy)
    expect(await stored()).toEqual({ clickhouse: legacy, clickhouseIds: legacy, postgres: legacy })
  }, 180_000)

  it('resumes after a kill -9 half way and still stores each row once', async () => {
    // A second legacy table, so this test counts its own rows.
    await client.query(`CREATE TABLE legacy_audit AS SELECT * FROM audit_logs; ALTER TABLE legacy_audit ADD PRIMARY KEY (id)`)
    const legacy = (await client.query(`SELECT count(*)::int AS n FROM legacy_audit`)).rows[0].n as number
    const file = checkpoint('crash')
    const args = ['triggers', 'backfill', '--db', db, '--legacy-table', 'legacy_audit', '--collector', running.url, '--checkpoint', file, '--batch', '500']
    const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' })
    const exited = new Promise((r) => child.once('exit', r))
    await eventually('a checkpoint part of the way through', async () => existsSync(file) && JSON.parse(readFileSync(file, 'utf8')).sent >= 5_000, 60_000)
    child.kill('SIGKILL')
    await exited
    const half = JSON.parse(readFileSync(file, 'utf8'))
    expect(half.sent).toBeLessThan(legacy)

    const resumed = await cli(...args.slice(1))
    expect(resumed.status, resumed.stderr).toBe(0)
    expect(resumed.stderr).toContain(`resuming public.legacy_audit after key ${half.cursor}: ${half.sent.toLocaleString('en-US')} rows already stored`)
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ sent: legacy, rejected: 0, cursor: String(legacy) })
    const { clickhouse, postgres } = storesOf(running.collector)
    const count = async () => {
      const rs = await clickhouse.query({ query: `SELECT count() AS n, uniqExact(id) AS ids FROM actline.activities WHERE attributes['legacy.table'] = 'public.legacy_audit'`, format: 'JSONEachRow' })
      const [ch] = await rs.json<{ n: string; ids: string }>()
      const pgn = (await postgres.query(`SELECT count(*)::int AS n FROM audit_log WHERE attributes->>'legacy.table' = 'public.legacy_audit'`)).rows[0].n
      return { clickhouse: Number(ch!.n), ids: Number(ch!.ids), postgres: pgn as number }
    }
    await eventually('every row of the resumed backfill stored', async () => (await count()).postgres >= legacy && (await count()).clickhouse >= legacy, 60_000)
    await new Promise((r) => setTimeout(r, 1500))
    expect(await count()).toEqual({ clickhouse: legacy, ids: legacy, postgres: legacy })
  }, 180_000)

  it('reports the rows it cannot send, each with its reason, and exits 1', async () => {
    await client.query(`CREATE TABLE odd_audit (id int PRIMARY KEY, table_name text, operation text, changed_at timestamptz)`)
    await client.query(`INSERT INTO odd_audit VALUES (1, 'users', 'INSERT', now()), (2, 'users', 'VACUUM', now()), (3, 'users', 'UPDATE', NULL), (4, 'users', 'UPDATE', '1990-01-01')`)
    const file = checkpoint('odd')
    const r = await cli('backfill', '--db', db, '--legacy-table', 'odd_audit', '--collector', running.url, '--checkpoint', file)
    expect(r.status).toBe(1)
    expect(r.stdout).toContain(`3 rows were refused, each with its reason, in ${join(dir.path, 'odd.refused.ndjson')}`)
    const refused = readFileSync(join(dir.path, 'odd.refused.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(refused).toEqual([
      { key: '2', reason: "operation 'VACUUM' is not an insert, update, delete or truncate" },
      { key: '3', reason: 'the time is null' },
      { key: '4', reason: expect.stringMatching(/^timestamp: timestamp is before 2000-01-01/) },
    ])
  }, 60_000)

  it('refuses rows whose key is NULL by name, and counts a row with several problems once: the counts add up', async () => {
    await client.query(`CREATE TABLE ref_audit (ref text UNIQUE, table_name text, operation text, changed_at timestamptz, actor_id text)`)
    await client.query(
      `INSERT INTO ref_audit VALUES ('a', 'users', 'INSERT', now(), 'u1'), (NULL, 'users', 'INSERT', now(), 'u2'), (NULL, 'users', 'DELETE', now(), 'u3'),
         ('b', 'users', 'UPDATE', '1990-01-01', repeat('x', 300)), ('c', 'users', 'UPDATE', now(), 'u4')`,
    )
    const file = checkpoint('ref')
    const r = await cli('backfill', '--db', db, '--legacy-table', 'ref_audit', '--key-column', 'ref', '--collector', running.url, '--checkpoint', file, '--json')
    expect(r.status, r.stderr).toBe(1)
    const summary = JSON.parse(r.stdout)
    // 5 rows: 2 stored (a, c), 3 refused (two NULL keys, b with two problems), each counted once.
    expect(summary).toMatchObject({ sent: 2, stored_total: 2, rejected_total: 3 })
    const refused = readFileSync(join(dir.path, 'ref.refused.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(refused).toHaveLength(3)
    expect(refused.filter((x) => x.key === null)).toEqual([
      { key: null, row: expect.stringMatching(/^ctid \(\d+,\d+\)$/), reason: expect.stringMatching(/^its key column ref is NULL: /) },
      { key: null, row: expect.stringMatching(/^ctid \(\d+,\d+\)$/), reason: expect.stringMatching(/^its key column ref is NULL: /) },
    ])
    const b = refused.find((x) => x.key === 'b')
    expect(b.reason).toMatch(/timestamp: timestamp is before 2000-01-01.*; actor_id: /)
    // A second run finds nothing more to send and refuses nothing twice.
    const again = await cli('backfill', '--db', db, '--legacy-table', 'ref_audit', '--key-column', 'ref', '--collector', running.url, '--checkpoint', file, '--json')
    expect(JSON.parse(again.stdout)).toMatchObject({ sent: 0, stored_total: 2, rejected_total: 3 })
    expect(readFileSync(join(dir.path, 'ref.refused.ndjson'), 'utf8').trim().split('\n')).toHaveLength(3)
  }, 60_000)

  it('answers bad input in one line', async () => {
    const port = await closedPort()
    expect((await cli('backfill', '--db', db, '--legacy-table', 'audit_logs', '--collector', `http://127.0.0.1:${port}`)).stderr.trim()).toMatch(
      new RegExp(`^triggers backfill: nothing answers at http://127.0.0.1:${port} \\(ECONNREFUSED\\): start the collector \\(actline start\\), or pass --collector URL$`),
    )
    expect((await cli('backfill', '--db', db, '--collector', running.url)).stderr.trim()).toBe('triggers backfill: --legacy-table is required: the table the audit triggers write (schema.table or table)')
    expect((await cli('backfill', '--db', db, '--legacy-table', 'users', '--collector', running.url)).stderr.trim()).toMatch(/^triggers backfill: cannot tell which column of users holds the table name: pass --table-column/)
    await client.query(`CREATE TABLE keyless_audit (table_name text, operation text, changed_at timestamptz)`)
    expect((await cli('backfill', '--db', db, '--legacy-table', 'keyless_audit', '--collector', running.url)).stderr.trim()).toBe(
      'triggers backfill: public.keyless_audit has no single-column primary key: pass --key-column, a column with a unique index, to page it by',
    )
    const other = checkpoint('twice')
    expect((await cli('backfill', '--db', db, '--legacy-table', 'legacy_audit', '--collector', running.url, '--checkpoint', other)).stderr.trim()).toMatch(
      /^triggers backfill: .*twice\.json is the checkpoint of another backfill \(.* public\.audit_logs by id\): pass --checkpoint for this one, or --restart to start over$/,
    )
    expect((await cli('backfill', '--db', db, '--legacy-table', 'audit_logs', '--batch', '0')).stderr.trim()).toBe("triggers backfill: --batch is the rows per request, 1 to 50000, got '0'")
  }, 60_000)
})
