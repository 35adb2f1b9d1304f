/**
 * Change-data capture through failures, on the real PostgreSQL server
 * (PG_URL, wal_level = logical): a writer commits rows without the SDK while
 * the collector is killed with SIGKILL several times, and while PostgreSQL
 * itself is restarted; afterwards every committed row change is in
 * ClickHouse and the audit trail exactly once. The restart needs root and
 * pg_ctlcluster (.ci/run has both); this suite runs alone, so the restart
 * disturbs no other test.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backlog, killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'
import { createScratchDatabase, eventually, openStores, PG_URL, tempDir, testConfig } from '../helpers/stores.ts'

afterAll(killChildren)

const ROWS = 4000

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
      await c.query(`INSERT INTO ${table} (n, payload) SELECT g, 'row ' || g FROM generate_series($1::int, $2::int) AS g`, [n, n + 9])
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

  beforeAll(async () => {
    scratch = await createScratchDatabase()
    admin = new pg.Client({ connectionString: scratch.url })
    // The restart below ends this connection: expected, not an error of the test.
    admin.on('error', () => {})
    await admin.connect()
    await admin.query(`CREATE TABLE killed (id bigserial PRIMARY KEY, n int NOT NULL, payload text)`)
    await admin.query(`CREATE TABLE restarted (id bigserial PRIMARY KEY, n int NOT NULL, payload text)`)
    await admin.end()
  })

  afterAll(async () => {
    // A slot is dropped only once no collector reads it.
    killChildren()
    await new Promise((r) => setTimeout(r, 500))
    const c = new pg.Client({ connectionString: scratch.url })
    await c.connect().catch(() => {})
    await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [slot]).catch(() => {})
    await c.end().catch(() => {})
    await scratch?.drop()
    dir.remove()
  })

  const configFile = () =>
    writeConfig(dir.path, [
      `data_dir: ${dir.path}/collector`,
      'server: { port: 0, log_level: info }',
      `receivers: { postgres_cdc: { enabled: true, url: "${scratch.url}", tables: [public.killed, public.restarted], slot: ${slot}, publication: ${slot} } }`,
    ].join('\n'))

  /** Rows of `table` in both stores, and their distinct ids and keys, read after the collector stopped. */
  async function stored(table: string) {
    const stores = await openStores(testConfig(`${dir.path}/collector`))
    try {
      const [ch] = await (
        await stores.clickhouse.query({ query: `SELECT count() AS n, uniqExact(id) AS ids, uniqExact(entity_id) AS keys FROM actline.activities WHERE entity_type = {t:String}`, query_params: { t: table }, format: 'JSONEachRow' })
      ).json<Record<string, string>>()
      const { rows } = await stores.postgres.query(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids, count(DISTINCT entity_id)::int AS keys FROM audit_log WHERE entity_type = $1`, [table])
      return { clickhouse: { n: Number(ch!.n), ids: Number(ch!.ids), keys: Number(ch!.keys) }, postgres: rows[0] }
    } finally {
      await stores.close()
    }
  }

  /** Until the running collector's ClickHouse holds ROWS changes of `table` and its log is empty: then its stores are read. */
  async function capturedAll(url: string, table: string) {
    await eventually(`${ROWS} row changes of ${table} captured`, async () => {
      const r = await fetch(`${url}/api/v1/activities/count?entity_type=${table}&from=now-1d`).then((r) => r.json())
      return r.count >= ROWS && (await backlog(url)) === 0
    }, 180_000)
  }

  it('loses and doubles nothing when the collector is killed mid-stream, 4 times', async () => {
    const file = configFile()
    // A slot captures what commits after it exists: the first start makes it, then the writes begin.
    let writing: Promise<void> | undefined
    for (let i = 0; i < 4; i++) {
      const collector = await startCollectorProcess(file)
      writing ??= writer(scratch.url, 'killed')
      await new Promise((r) => setTimeout(r, 600 + Math.random() * 900))
      collector.child.kill('SIGKILL')
      await collector.exited
    }
    await writing
    const last = await startCollectorProcess(file)
    // The slot sends again what no run confirmed; the stores hold every row once it is all through.
    await capturedAll(last.url, 'killed')
    last.child.kill('SIGTERM')
    expect(await last.exited).toBe(0)
    expect(await stored('killed')).toEqual({ clickhouse: { n: ROWS, ids: ROWS, keys: ROWS }, postgres: { n: ROWS, ids: ROWS, keys: ROWS } })
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
})
