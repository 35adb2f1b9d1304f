/**
 * `actline triggers backup` and `restore`, as processes against a real
 * database (PGlite always, the server at PG_URL too): back up, drop every
 * trigger and function, restore, and the catalog is as it was, definitions,
 * enabled state and comments alike. Without --yes restore changes nothing.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readDefinitions } from '../../toolkit/triggers/backup.ts'
import type { PostgresTarget } from '../helpers/postgres-target.ts'
import { PG_URL, tempDir } from '../helpers/stores.ts'
import { openFixture, triggersCli as cli } from './trigger-fixture.ts'


describe.each(PG_URL ? (['pglite', 'server'] as const) : (['pglite'] as const))('actline triggers backup and restore (%s)', (kind) => {
  const dir = tempDir()
  const file = join(dir.path, 'backup.json')
  let target: PostgresTarget
  let client: pg.Client
  let db: string

  /** Drops every trigger of the fixture and every function they use: what the drop phases would leave. */
  async function dropEverything() {
    const { rows } = await client.query(`SELECT DISTINCT t.tgname AS name, c.relname AS "table", p.oid::regprocedure::text AS fn
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND c.relnamespace = 'public'::regnamespace`)
    for (const r of rows) await client.query(`DROP TRIGGER "${r.name}" ON "${r.table}"`)
    for (const fn of new Set(rows.map((r) => r.fn))) await client.query(`DROP FUNCTION ${fn}`)
  }

  beforeAll(async () => {
    ;({ target, client, db } = await openFixture(join(dir.path, 'pg'), kind))
    await client.query(`COMMENT ON TRIGGER users_audit ON users IS 'every change of a user, for the auditors'`)
    await client.query(`COMMENT ON FUNCTION audit_row() IS 'one wide table: audit_logs'`)
    await client.query(`ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_activity`)
  }, 120_000)

  afterAll(async () => {
    await client?.end()
    await target?.stop()
    dir.remove()
  })

  it('backs up every trigger to a file and the actline_trigger_backup table, and restores them exactly', async () => {
    const before = await readDefinitions(client)
    expect(before).toHaveLength(15)
    const b = await cli('backup', '--db', db, '--out', file)
    expect(b.status, b.stderr).toBe(0)
    expect(b.stdout).toMatch(/^backed up 15 triggers to .*backup\.json and actline_trigger_backup/)
    const saved = JSON.parse(readFileSync(file, 'utf8'))
    expect(saved.triggers.map((t: any) => t.checksum)).toEqual(before.map((t) => t.checksum))
    const { rows } = await client.query('SELECT count(*)::int AS n FROM actline_trigger_backup')
    expect(rows[0].n).toBe(15)

    await dropEverything()
    expect(await readDefinitions(client)).toEqual([])

    const dry = await cli('restore', '--db', db, '--from', file)
    expect(dry.status, dry.stderr).toBe(0)
    expect(dry.stdout).toMatch(/^-- would restore 15 triggers \(nothing changed; add --yes to run this\):/)
    expect(dry.stdout).toContain('CREATE OR REPLACE FUNCTION public.audit_row()')
    expect(await readDefinitions(client), 'a dry run changes nothing').toEqual([])

    const r = await cli('restore', '--db', db, '--from', file, '--yes')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout.trim()).toBe('restored 15 triggers; each is as backed up (definition, function, state, comments)')
    expect(await readDefinitions(client)).toEqual(before)
    const state = await client.query(`SELECT tgname, tgenabled FROM pg_trigger WHERE tgname IN ('users_touch', 'orders_activity') ORDER BY 1`)
    expect(state.rows).toEqual([{ tgname: 'orders_activity', tgenabled: 'A' }, { tgname: 'users_touch', tgenabled: 'D' }])
  })

  it('restores only the triggers named', async () => {
    await dropEverything()
    const r = await cli('restore', '--db', db, '--from', file, '--trigger', 'orders.orders_notify', '--trigger', 'users_audit', '--yes')
    expect(r.status, r.stderr).toBe(0)
    expect((await readDefinitions(client)).map((t) => t.name).sort()).toEqual(['orders_notify', 'users_audit'])
    expect((await cli('restore', '--db', db, '--from', file, '--yes')).status).toBe(0)
  })

  it('refuses a backup that was edited, and one that is not a backup, in one line', async () => {
    const saved = JSON.parse(readFileSync(file, 'utf8'))
    saved.triggers[0].function_def = saved.triggers[0].function_def.replace('RETURN', 'RETURN  ')
    const edited = join(dir.path, 'edited.json')
    writeFileSync(edited, JSON.stringify(saved))
    const e = await cli('restore', '--db', db, '--from', edited, '--yes')
    expect(e.status).toBe(1)
    expect(e.stderr.trim()).toMatch(/^triggers restore: .*edited\.json does not match its integrity checksum: it was edited or damaged; run actline triggers backup again$/)
    writeFileSync(edited, '{"hello": 1}')
    expect((await cli('restore', '--db', db, '--from', edited)).stderr.trim()).toMatch(/is not an actline trigger backup/)
    expect((await cli('restore', '--db', db, '--from', join(dir.path, 'missing.json'))).stderr.trim()).toMatch(/cannot read .*missing\.json: no such file$/)
    expect((await cli('restore', '--db', db, '--from', file, '--trigger', 'nope')).stderr.trim()).toBe("triggers restore: no trigger 'nope' in the backup")
    expect((await cli('backup', '--db', db)).stderr.trim()).toMatch(/^triggers backup: --out FILE is required/)
  })
})
