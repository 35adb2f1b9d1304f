/**
 * Verify trusts nothing a superuser can put in its way by name (issue 26),
 * on PGlite and the server: a function, an operator and a view of the same
 * names in another schema, put first by ALTER DATABASE or ALTER ROLE ...
 * SET search_path, cannot make an edited row pass; a changed netmask is an
 * edit; and retention's count is the rows it dropped, in verify as in retain.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresExporterConfig } from '../../exporters/postgres/config.ts'
import { createPostgresExporter } from '../../exporters/postgres/exporter.ts'
import { retain } from '../../exporters/postgres/audit/retain.ts'
import { createLogger } from '../../collector/server/logger.ts'
import { verifyAuditLog } from '../../schemas/audit-chain-store.ts'
import { createScratchDatabase, tempDir } from '../helpers/stores.ts'
import { asSuperuser, AUDIT_TARGETS, invoices } from '../helpers/tamper.ts'

const logger = createLogger('silent')
const targets = AUDIT_TARGETS
const activity = invoices()

/** Objects that, first in search_path, would make every row of audit_log look whole. */
const SHADOWS: Record<string, string[]> = {
  // Returns the hash stored for the row whose prev_hash starts its input: every row "matches".
  function: [
    `CREATE FUNCTION shadow.sha256(b bytea) RETURNS bytea LANGUAGE sql STABLE AS $$
       SELECT coalesce((SELECT a.row_hash FROM public.audit_log a WHERE a.prev_hash = pg_catalog.substr(b, 1, 32) LIMIT 1), pg_catalog.sha256(b)) $$`,
  ],
  // bytea = bytea that is always true.
  operator: [
    `CREATE FUNCTION shadow.always(bytea, bytea) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true'`,
    `CREATE OPERATOR shadow.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = shadow.always)`,
  ],
  // The table as it was before the edit.
  view: [
    `CREATE TABLE shadow.original AS SELECT * FROM public.audit_log WHERE chain = 'shadowed' AND chain_seq = 2`,
    `CREATE VIEW shadow.audit_log AS SELECT * FROM public.audit_log WHERE NOT (chain = 'shadowed' AND chain_seq = 2) UNION ALL SELECT * FROM shadow.original`,
  ],
}

describe.each(targets)('verify against objects that shadow its names (%s)', (target) => {
  const dir = tempDir()
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined
  let config: PostgresExporterConfig & { path: string }
  let exporter: ReturnType<typeof createPostgresExporter>
  const tamper = (text: string) => asSuperuser(exporter.pool(), text)
  const database = async () => (await exporter.pool().query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db
  /** A new session, as the next collector start or CLI run gets one: settings made by ALTER ... SET apply to it. */
  async function reopen(): Promise<void> {
    await exporter.shutdown()
    exporter = createPostgresExporter(config, logger)
    await exporter.start()
  }

  beforeAll(async () => {
    scratch = target === 'server' ? await createScratchDatabase() : undefined
    config = { ...PostgresExporterConfig.parse({}), path: dir.path, ...(scratch && { url: scratch.url }) }
    exporter = createPostgresExporter(config, logger)
    await exporter.start()
    expect(await exporter.export([1, 2, 3].map(() => activity({ tenant_id: 'shadowed', ip: '192.0.2.1' })))).toEqual({ status: 'success' })
  })
  afterAll(async () => {
    await exporter?.shutdown()
    await scratch?.drop()
    dir.remove()
  })

  for (const [kind, statements] of Object.entries(SHADOWS)) {
    for (const how of ['database', 'role'] as const) {
      it(`finds the edit behind a shadowing ${kind} put first by ALTER ${how.toUpperCase()} ... SET search_path`, async () => {
        const db = await database()
        await tamper('DROP SCHEMA IF EXISTS shadow CASCADE')
        await tamper('CREATE SCHEMA shadow')
        for (const s of statements) await tamper(s)
        await tamper(`UPDATE audit_log SET actor_id = 'mallory' WHERE chain = 'shadowed' AND chain_seq = 2`)
        const path = 'SET search_path = shadow, pg_catalog, public'
        await tamper(how === 'database' ? `ALTER DATABASE "${db}" ${path}` : `ALTER ROLE CURRENT_USER IN DATABASE "${db}" ${path}`)
        try {
          await reopen()
          // The new session did get the hostile path: the attack is in place.
          expect((await exporter.pool().query<{ p: string }>(`SELECT pg_catalog.current_setting('search_path') AS p`)).rows[0]!.p).toMatch(/^pg_catalog, "?public"?, pg_temp$/)
          expect((await asSuperuserPath(exporter, db)).startsWith('shadow')).toBe(true)
          const report = await verifyAuditLog(exporter.reader(), { tenant: 'shadowed' })
          expect(report.ok).toBe(false)
          expect(report.chains[0]!.broken).toMatchObject({ kind: 'edited', seq: '2' })
        } finally {
          await tamper(how === 'database' ? `ALTER DATABASE "${db}" RESET search_path` : `ALTER ROLE CURRENT_USER IN DATABASE "${db}" RESET search_path`)
          await tamper(`UPDATE audit_log SET actor_id = NULL WHERE chain = 'shadowed' AND chain_seq = 2`)
          await tamper('DROP SCHEMA IF EXISTS shadow CASCADE')
          await reopen()
        }
        expect((await verifyAuditLog(exporter.reader(), { tenant: 'shadowed' })).ok).toBe(true)
      })
    }
  }

  it('finds a changed netmask: the canonical row holds the mask when it is not the whole address', async () => {
    await tamper(`UPDATE audit_log SET ip = pg_catalog.set_masklen(ip, 8) WHERE chain = 'shadowed' AND chain_seq = 3`)
    const report = await verifyAuditLog(exporter.reader(), { tenant: 'shadowed' })
    expect(report.chains[0]!.broken).toMatchObject({ kind: 'edited', seq: '3' })
    await tamper(`UPDATE audit_log SET ip = pg_catalog.set_masklen(ip, 32) WHERE chain = 'shadowed' AND chain_seq = 3`)
    expect((await verifyAuditLog(exporter.reader(), { tenant: 'shadowed' })).ok).toBe(true)
  })

  it('counts what retention dropped once, in retain and in verify, when dropped and kept rows alternate in a chain', async () => {
    // Old and current rows interleaved in one chain: late events land in the old month's partition.
    const old = (i: number) => Date.UTC(2025, 0, 10 + i)
    const rows = [0, 1, 2, 3, 4, 5].map((i) => activity({ tenant_id: 'late', timestamp: i % 2 ? Date.now() - 1000 + i : old(i) }))
    for (const row of rows) expect(await exporter.export([row])).toEqual({ status: 'success' })
    const result = await retain(exporter.pool(), '2025-03')
    const late = result.chains.find((c) => c.chain === 'late')!
    expect(late).toEqual({ chain: 'late', rows: 3, runs: 3 })
    const report = await verifyAuditLog(exporter.reader(), { tenant: 'late' })
    expect(report.ok).toBe(true)
    expect(report.chains[0]).toMatchObject({ chain: 'late', retained: '3', rows: 4 })
  })
})

/** The search_path a fresh session of the database gets before actline sets its own. */
async function asSuperuserPath(exporter: ReturnType<typeof createPostgresExporter>, db: string): Promise<string> {
  const { rows } = await exporter.pool().query<{ setconfig: string[] | null }>(
    `SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1`,
    [db],
  )
  return rows.flatMap((r) => r.setconfig ?? []).find((c) => c.startsWith('search_path='))?.slice('search_path='.length) ?? ''
}
