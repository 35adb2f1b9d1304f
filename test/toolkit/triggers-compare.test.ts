/**
 * `actline triggers compare`, the dual run: the fixture's triggers write the
 * legacy audit rows while actline's PostgreSQL exporter stores the app's
 * db.* activities (as the SDK sends them) into a real audit_log. A clean run
 * is at 100%; a write the app did not report is named, table and row.
 */
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseActivity } from '../../schemas/activity.ts'
import { PostgresExporterConfig } from '../../exporters/postgres/config.ts'
import { createPostgresExporter } from '../../exporters/postgres/exporter.ts'
import { createLogger } from '../../collector/server/logger.ts'
import type { PostgresTarget } from '../helpers/postgres-target.ts'
import { PG_URL, tempDir } from '../helpers/stores.ts'
import { openFixture, triggersCli as cli } from './trigger-fixture.ts'


describe.each(PG_URL ? (['pglite', 'server'] as const) : (['pglite'] as const))('actline triggers compare (%s)', (kind) => {
  const dir = tempDir()
  let target: PostgresTarget
  let client: pg.Client
  let exporter: ReturnType<typeof createPostgresExporter>
  let db: string
  const since = new Date(Date.now() - 60_000).toISOString()

  /** What the SDK sends for a write: db.<op> on the table, the row's id. */
  const report = async (op: 'insert' | 'update' | 'delete', id: number) => {
    const r = parseActivity({ source: 'database', action: `db.${op}`, entity_type: 'users', entity_id: String(id), actor_id: 'app' })
    if (!r.ok) throw new Error('bad fixture')
    expect((await exporter.export([r.activity])).status).toBe('success')
  }

  beforeAll(async () => {
    ;({ target, client, db } = await openFixture(join(dir.path, 'pg'), kind))
    exporter = createPostgresExporter({ ...PostgresExporterConfig.parse({ url: db }), path: join(dir.path, 'unused') }, createLogger('silent'))
    await exporter.start()
    // The dual run: each write fires the legacy trigger, and the app reports it to actline.
    for (let i = 1; i <= 5; i++) {
      const { rows } = await client.query(`INSERT INTO users (email) VALUES ($1) RETURNING id`, [`u${i}@example.com`])
      await report('insert', rows[0].id)
    }
    for (const id of [1, 2, 3]) {
      await client.query(`UPDATE users SET email = email || '.old' WHERE id = $1`, [id])
      await report('update', id)
    }
  }, 120_000)

  afterAll(async () => {
    await exporter?.shutdown()
    await client?.end()
    await target?.stop()
    dir.remove()
  })

  it('is at 100% on a clean dual run', async () => {
    const r = await cli('compare', '--db', db, '--legacy-table', 'audit_logs', '--since', since, '--json')
    expect(r.status, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.columns).toEqual({ table: 'table_name', operation: 'operation', time: 'changed_at', id: 'row_id' })
    expect(out.tables).toEqual([
      { table: 'users', operation: 'insert', legacy: 5, actline: 5, parity: 100, only_legacy: [], only_actline: [], legacy_duplicates: 0 },
      { table: 'users', operation: 'update', legacy: 3, actline: 3, parity: 100, only_legacy: [], only_actline: [], legacy_duplicates: 0 },
    ])
    expect(out.below_threshold).toEqual([])
    expect(out.at_parity).toEqual(['users'])
  })

  it('names the table and the row when the app skipped a write, and exits 1', async () => {
    await client.query(`UPDATE users SET email = 'skipped@example.com' WHERE id = 4`)
    const r = await cli('compare', '--db', db, '--legacy-table', 'audit_logs', '--since', since)
    expect(r.status).toBe(1)
    expect(r.stdout).toMatch(/^users +update +4 +3 +75%  below$/m)
    expect(r.stdout).toContain('only in the legacy table: 4')
    expect(r.stdout.trim().split('\n').at(-1)).toBe('below 100%: users')
    expect((await cli('compare', '--db', db, '--legacy-table', 'audit_logs', '--since', since, '--threshold', '70')).stdout).toContain('only in the legacy table: 4')
  })

  it('counts a change two triggers recorded once', async () => {
    // A redundant audit trigger (phase 1's kind): each insert leaves two legacy rows of one row id and time.
    await client.query(`CREATE TRIGGER users_audit_again AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION audit_row()`)
    try {
      const { rows } = await client.query(`INSERT INTO users (email) VALUES ('twice@example.com') RETURNING id`)
      await report('insert', rows[0].id)
      const r = await cli('compare', '--db', db, '--legacy-table', 'audit_logs', '--since', since)
      expect(r.stdout).toMatch(/^users +insert +6 +6 +100%$/m)
      expect(r.stdout).toContain('1 legacy rows repeat a change another trigger already recorded (same table, operation, row id and time): counted once')
    } finally {
      await client.query(`DROP TRIGGER users_audit_again ON users`)
    }
  })

  it('answers bad input in one line', async () => {
    expect((await cli('compare', '--db', db, '--legacy-table', 'nope', '--since', since)).stderr.trim()).toBe('triggers compare: no table nope (or no privilege to see its columns): pass --legacy-table schema.table')
    expect((await cli('compare', '--db', db, '--legacy-table', 'audit_logs', '--since', 'yesterday')).stderr.trim()).toMatch(/^triggers compare: --since is not a time/)
    expect((await cli('compare', '--db', db, '--legacy-table', 'audit_logs', '--since', since, '--id-column', 'nope')).stderr.trim()).toMatch(/^triggers compare: audit_logs has no column nope \(it has id, table_name/)
  })
})
