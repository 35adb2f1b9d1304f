/**
 * Change-data capture through failures, on the real PostgreSQL server
 * (PG_URL, wal_level = logical): a writer commits rows without the SDK while
 * the collector is killed with SIGKILL several times, and while PostgreSQL
 * itself is restarted; afterwards every committed row change is in
 * ClickHouse and the audit trail exactly once, hostile values and context
 * messages among them. A 1,000,000-row transaction is read in bounded memory
 * and through a kill in its middle. The restart needs root and
 * pg_ctlcluster (.ci/run has both); this suite runs alone, so the restart
 * disturbs no other test.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backlog, killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'
import { createScratchDatabase, eventually, openStores, PG_URL, tempDir, testConfig } from '../helpers/stores.ts'

afterAll(killChildren)

const ROWS = 4000
const KEYLESS_ROWS = 500
const BULK = 1_000_000
const HEAP_MB = 384
/** Resident memory a collector may reach while it reads the transaction: what it holds for a small one, plus a bounded piece. */
const PEAK_BOUND = 900 * 1024 ** 2

/** Commits ROWS rows, 10 per transaction, through outages (a failed transaction is retried: it never committed). */
async function writer(url: string, table: string): Promise<void> {
  let c: pg.Client | undefined
  for (let n = 0; n < ROWS; ) {
    try {
      if (!c) {
        c = new pg.Client({ connectionString: url })
        c.on('error', () => {})
        await c.connect()
      }
      // Hostile as well: values JavaScript cannot hold as parsed (NaN, a json escape of a lone surrogate), one over
      // max_value_bytes, and a context message that must be ignored, not make the changes fail.
      await c.query(
        `INSERT INTO ${table} (n, payload, f, j)
         SELECT g, CASE WHEN g % 10 = 3 THEN repeat('p', 9000) ELSE 'row ' || g END, CASE WHEN g % 10 = 1 THEN 'NaN'::float8 ELSE g END,
                CASE WHEN g % 10 = 2 THEN '{"s":"\\ud800"}'::json END
         FROM generate_series($1::int, $2::int) AS g CROSS JOIN (SELECT pg_logical_emit_message(true, 'actline', '{"actor_id":"\\ud800"}')) AS forged`,
        [n, n + 9],
      )
      n += 10
      await new Promise((r) => setTimeout(r, 5))
    } catch {
      await c?.end().catch(() => {})
      c = undefined
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  await c?.end()
}

const cluster = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql')[0] : undefined

describe.skipIf(!PG_URL)('change-data capture through kill -9 and a PostgreSQL restart', () => {
  const dir = tempDir('actline-cdc-crash-')
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>>
  let admin: pg.Client
  const slot = `actline_crash_${process.pid}`
  const mallory = `actline_crash_m_${process.pid}`

  beforeAll(async () => {
    scratch = await createScratchDatabase()
    admin = new pg.Client({ connectionString: scratch.url })
    // The restart below ends this connection: expected, not an error of the test.
    admin.on('error', () => {})
    await admin.connect()
    await admin.query(`CREATE ROLE ${mallory} LOGIN`)
    await admin.query(`CREATE TABLE killed (id bigserial PRIMARY KEY, n int NOT NULL, payload text, f float8, j json)`)
    await admin.query(`CREATE TABLE restarted (id bigserial PRIMARY KEY, n int NOT NULL, payload text, f float8, j json)`)
    await admin.end()
  })

  afterAll(async () => {
    // A slot is dropped only once no collector reads it.
    killChildren()
    await new Promise((r) => setTimeout(r, 500))
    const c = new pg.Client({ connectionString: scratch.url })
    await c.connect().catch(() => {})
    await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY($1)`, [[slot, `${slot}_bulk`]]).catch(() => {})
    await c.end().catch(() => {})
    await scratch?.drop()
    const server = new pg.Client({ connectionString: PG_URL })
    await server.connect()
    await server.query(`DROP ROLE IF EXISTS ${mallory}`).catch(() => {})
    await server.end()
    dir.remove()
  })

  const configFile = () =>
    writeConfig(dir.path, [
      `data_dir: ${dir.path}/collector`,
      'server: { port: 0, log_level: info }',
      `receivers: { postgres_cdc: { enabled: true, url: "${scratch.url}", tables: [public.killed, public.restarted, public.keyless_later], slot: ${slot}, publication: ${slot}, session_context: true, reconcile_seconds: 1 } }`,
    ].join('\n'))

  /**
   * A table without a key, made while the collectors are being killed, written by a role that is not the app's
   * and tries to say it is someone else before each insert: the server refuses its message, not its rows.
   */
  async function keylessWriter(): Promise<void> {
    await new Promise((r) => setTimeout(r, 1000))
    const admin = new pg.Client({ connectionString: scratch.url })
    await admin.connect()
    await admin.query(`CREATE TABLE keyless_later (n int NOT NULL, payload text)`)
    await admin.query(`GRANT INSERT ON keyless_later TO ${mallory}`)
    // Rows written before a collector published it are not captured (docs/cdc.md): the test writes after.
    await eventually('keyless_later published, insert-only', async () =>
      (await admin.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'keyless_later'`, [`${slot}_inserts`])).rowCount === 1, 60_000)
    await admin.end()
    const c = new pg.Client({ connectionString: scratch.url.replace(/\/\/[^@/]*@/, `//${mallory}@`) })
    await c.connect()
    for (let n = 0; n < KEYLESS_ROWS; n += 10) {
      await expect(c.query(`SELECT pg_logical_emit_message(true, 'actline', '{"actor_id":"ceo"}')`)).rejects.toMatchObject({ code: '42501' })
      await c.query(`INSERT INTO keyless_later SELECT g, 'row ' || g FROM generate_series($1::int, $2::int) AS g`, [n, n + 9])
      await new Promise((r) => setTimeout(r, 20))
    }
    await c.end()
  }

  /** Rows of `table` in both stores, and their distinct ids and keys, read after the collector stopped. */
  async function stored(table: string, data = 'collector', postgres = true) {
    const stores = await openStores(testConfig(`${dir.path}/${data}`))
    try {
      const [ch] = await (
        await stores.clickhouse.query({ query: `SELECT count() AS n, uniqExact(id) AS ids, uniqExact(entity_id) AS keys FROM actline.activities WHERE entity_type = {t:String}`, query_params: { t: table }, format: 'JSONEachRow' })
      ).json<Record<string, string>>()
      const pgRows = postgres ? (await stores.postgres.query(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids, count(DISTINCT entity_id)::int AS keys FROM audit_log WHERE entity_type = $1`, [table])).rows : []
      return { clickhouse: { n: Number(ch!.n), ids: Number(ch!.ids), keys: Number(ch!.keys) }, postgres: pgRows[0] }
    } finally {
      await stores.close()
    }
  }

  /** Until the running collector's ClickHouse holds ROWS changes of `table` and its log is empty: then its stores are read. */
  async function capturedAll(url: string, table: string, rows = ROWS) {
    await eventually(`${rows} row changes of ${table} captured`, async () => {
      const r = await fetch(`${url}/api/v1/activities/count?entity_type=${table}&from=now-1d`).then((r) => r.json())
      return r.count >= rows && (await backlog(url)) === 0
    }, 180_000)
  }

  it('loses and doubles nothing when the collector is killed mid-stream, 4 times', async () => {
    const file = configFile()
    // A slot captures what commits after it exists: the first start makes it, then the writes begin.
    let writing: Promise<unknown> | undefined
    for (let i = 0; i < 4; i++) {
      const collector = await startCollectorProcess(file)
      writing ??= Promise.all([writer(scratch.url, 'killed'), keylessWriter()])
      await new Promise((r) => setTimeout(r, 600 + Math.random() * 900))
      collector.child.kill('SIGKILL')
      await collector.exited
    }
    await writing
    const last = await startCollectorProcess(file)
    // The slot sends again what no run confirmed; the stores hold every row once it is all through.
    await capturedAll(last.url, 'killed')
    await capturedAll(last.url, 'keyless_later', KEYLESS_ROWS)
    last.child.kill('SIGTERM')
    expect(await last.exited).toBe(0)
    expect(await stored('killed')).toEqual({ clickhouse: { n: ROWS, ids: ROWS, keys: ROWS }, postgres: { n: ROWS, ids: ROWS, keys: ROWS } })
    // The hostile values arrived as values, none dropped: NaN as PostgreSQL writes it, the long payload as its marker.
    const stores = await openStores(testConfig(`${dir.path}/collector`))
    try {
      const { rows: [h] } = await stores.postgres.query(
        `SELECT count(*) FILTER (WHERE details->'new'->>'f' = 'NaN')::int AS nan, count(*) FILTER (WHERE details->'new'->'payload' ? 'sha256')::int AS markers,
                count(*) FILTER (WHERE details->'new'->>'j' = '{"s":"\\ud800"}')::int AS escaped, count(*) FILTER (WHERE attributes ? 'cdc.values_dropped')::int AS dropped
         FROM audit_log WHERE entity_type = 'killed'`,
      )
      expect(h).toEqual({ nan: ROWS / 10, markers: ROWS / 10, escaped: ROWS / 10, dropped: 0 })
      // The keyless table's inserts, each once, under the role that wrote them and nobody it claimed to be.
      const { rows: [k] } = await stores.postgres.query(
        `SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids, count(*) FILTER (WHERE attributes->>'db.user' = $1 AND actor_id IS NULL)::int AS as_written FROM audit_log WHERE entity_type = 'keyless_later'`,
        [mallory],
      )
      expect(k).toEqual({ n: KEYLESS_ROWS, ids: KEYLESS_ROWS, as_written: KEYLESS_ROWS })
      const [ch] = await (await stores.clickhouse.query({ query: `SELECT count() AS n, uniqExact(id) AS ids FROM actline.activities WHERE entity_type = 'keyless_later'`, format: 'JSONEachRow' })).json<Record<string, string>>()
      expect([Number(ch!.n), Number(ch!.ids)]).toEqual([KEYLESS_ROWS, KEYLESS_ROWS])
    } finally {
      await stores.close()
    }
  }, 600_000)

  it.skipIf(!cluster || process.getuid?.() !== 0)('loses and doubles nothing when PostgreSQL restarts mid-stream', async () => {
    const collector = await startCollectorProcess(configFile())
    const writing = writer(scratch.url, 'restarted')
    await new Promise((r) => setTimeout(r, 1500))
    execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', cluster!, 'main', 'restart'], { stdio: 'inherit' })
    await writing
    await capturedAll(collector.url, 'restarted')
    collector.child.kill('SIGTERM')
    expect(await collector.exited).toBe(0)
    expect(await stored('restarted')).toEqual({ clickhouse: { n: ROWS, ids: ROWS, keys: ROWS }, postgres: { n: ROWS, ids: ROWS, keys: ROWS } })
  }, 600_000)

  it('captures a 1,000,000-row transaction in bounded memory, through a kill -9 in its middle', async () => {
    const admin = new pg.Client({ connectionString: scratch.url })
    await admin.connect()
    await admin.query(`CREATE TABLE bulk (id int PRIMARY KEY, payload text NOT NULL)`)
    const file = writeConfig(dir.path, [
      `data_dir: ${dir.path}/bulk`,
      'server: { port: 0, log_level: info }',
      `receivers: { postgres_cdc: { enabled: true, url: "${scratch.url}", tables: [public.bulk], slot: ${slot}_bulk, publication: ${slot}_bulk } }`,
      // Far fewer ids than the transaction remembered as recent: the pieces already in the log are passed over on the
      // second read because the receiver recorded them (progress.ts), not because the collector remembers their ids.
      'pipeline: { dedup: { max_ids: 100000 } }',
      // ClickHouse alone: the store with no key on the ids, where a second read would show as a second row (the
      // audit trail refuses one by key, and the tests above check it); and the suite's time stays within CI's.
      'exporters: { postgres: { enabled: false } }',
    ].join('\n'))
    // The limit: a collector holding the transaction would die of it (the heap of 1,000,000 changes and their activities is several GB).
    const env = { NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}` }
    const first = await startCollectorProcess(file, env)
    await admin.query(`INSERT INTO bulk SELECT g, 'row ' || g || repeat('.', 100) FROM generate_series(1, ${BULK}) AS g`)
    await admin.end()
    // Killed once a good part of it is in the log, as pieces: the progress record says how far.
    const progress = `${dir.path}/bulk/receivers/postgres-cdc-${slot}_bulk.json`
    await eventually('a third of the transaction in the log', async () => existsSync(progress) && JSON.parse(readFileSync(progress, 'utf8')).written >= BULK / 3, 300_000)
    const peaks = [first.peakRss()]
    first.child.kill('SIGKILL')
    await first.exited
    const last = await startCollectorProcess(file, env)
    await eventually(`${BULK} row changes captured`, async () => {
      const r = await fetch(`${last.url}/api/v1/activities/count?entity_type=bulk&from=now-1d`).then((r) => r.json())
      return r.count >= BULK && (await backlog(last.url)) === 0
    }, 900_000)
    peaks.push(last.peakRss())
    last.child.kill('SIGTERM')
    expect(await last.exited).toBe(0)
    console.log(`1,000,000-row transaction: peak RSS ${peaks.map((b) => `${Math.round(b / 1024 ** 2)} MiB`).join(' and ')} (killed, then restarted)`)
    for (const peak of peaks) expect(peak).toBeLessThan(PEAK_BOUND)
    expect((await stored('bulk', 'bulk', false)).clickhouse).toEqual({ n: BULK, ids: BULK, keys: BULK })
  }, 1_200_000)
})
