/**
 * kill -9 the collector at random moments under a load of uniquely
 * identified events, 20 times, restarting it each time; then check that
 * every acknowledged id is in ClickHouse and PostgreSQL exactly once, and
 * that every tenant's hash chain in the audit trail is whole and gapless.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { eventually, missingFromClickHouse, openStores, tempDir, testConfig } from '../helpers/stores.ts'
import { verifyAuditLog } from '../../schemas/audit-chain-store.ts'
import { backlog, startCollectorProcess, writeConfig, killChildren } from '../helpers/process.ts'
import { postLoad } from '../helpers/load.ts'

const KILLS = Number(process.env.CRASH_KILLS ?? 20)
const dir = tempDir('actline-crash-')
// One hook, in this order: a collector left by a failed assertion dies before its directory goes.
afterAll(async () => {
  await killChildren()
  dir.remove()
})

/** Three tenants and none: four hash chains the kills must leave whole. */
const load = (url: string, acked: Set<string>) =>
  postLoad(url, acked, { connections: 4, perRequest: 50, event: (id, i) => ({ id, action: 'crash.test', source: 'user', ...(i % 4 && { tenant_id: `tenant-${i % 4}` }) }) })

describe(`kill -9, ${KILLS} times, under load`, () => {
  it('loses no acknowledged event and stores each exactly once in both stores', async () => {
    const configFile = writeConfig(dir.path, [
      `data_dir: ${dir.path}`,
      'server: { port: 0, log_level: info }',
      // Small, frequent batches: many exports are in flight when the kill lands.
      'pipeline: { batch: { send_batch_size: 400, timeout_ms: 50 } }',
    ].join('\n'))
    const acked = new Set<string>()
    for (let i = 0; i < KILLS; i++) {
      const collector = await startCollectorProcess(configFile)
      const stopLoad = load(collector.url, acked)
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 1500))
      collector.child.kill('SIGKILL')
      await collector.exited
      await stopLoad()
      console.log(`kill ${i + 1}/${KILLS}: ${acked.size} acknowledged so far`)
    }

    // One last clean run drains whatever the log still holds.
    const last = await startCollectorProcess(configFile)
    await eventually('log drained', async () => (await backlog(last.url)) === 0, 120_000)
    last.child.kill('SIGTERM')
    expect(await last.exited).toBe(0)

    expect(acked.size).toBeGreaterThan(KILLS * 100)
    const stores = await openStores(testConfig(dir.path))
    try {
      const ids = [...acked]
      const ch = stores.clickhouse
      expect(await missingFromClickHouse(ch, ids)).toBe(0)
      const [dupCh] = await (await ch.query({ query: 'SELECT count() - uniqExact(id) AS n FROM actline.activities', format: 'JSONEachRow' })).json<{ n: string }>()
      expect(Number(dupCh!.n)).toBe(0)

      const pg = stores.postgres
      const missingPg = await pg.query('SELECT count(*)::int AS n FROM unnest($1::uuid[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.id = a.id)', [ids])
      const dupPg = await pg.query('SELECT (count(*) - count(DISTINCT id))::int AS n FROM audit_log')
      expect(missingPg.rows[0].n).toBe(0)
      expect(dupPg.rows[0].n).toBe(0)
      console.log(`${ids.length} acknowledged ids: all present once in ClickHouse and PostgreSQL`)
      // Every chain valid and gapless: a batch killed mid-transaction took its sequence numbers with it.
      const report = await verifyAuditLog({ rows: async (sql, params) => (await pg.query(sql, params as unknown[])).rows })
      expect(report.chains.map((c) => [c.chain, c.broken])).toEqual(['', 'tenant-1', 'tenant-2', 'tenant-3'].map((c) => [c, undefined]))
      expect(report).toMatchObject({ ok: true, unchained: 0 })
      const total = await pg.query('SELECT count(*)::int AS n FROM audit_log')
      expect(report.rows).toBe(total.rows[0].n)
      console.log(`${report.chains.length} hash chains, ${report.rows} rows: every one whole and gapless`)
    } finally {
      await stores.close()
    }
  }, 900_000)
})
