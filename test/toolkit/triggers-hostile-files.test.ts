/**
 * A backup or a plan file edited by someone who knows its format (issue 26):
 * every field is covered by the file's integrity checksum, and even a file
 * whose checksums were computed again is data, never SQL: a definition runs
 * only as PostgreSQL's parser reads it (one statement of its kind, naming
 * what it should), only as this database's backup table recorded it, and
 * drop goes by each trigger's kind and function as the live catalog has them.
 * Run as processes against PGlite always, and the server at PG_URL too.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checksum, readDefinitions } from '../../toolkit/triggers/backup.ts'
import { integrity } from '../../toolkit/triggers/sql.ts'
import type { PostgresTarget } from '../helpers/postgres-target.ts'
import { PG_URL, tempDir } from '../helpers/stores.ts'
import { openFixture, triggersCli as cli } from './trigger-fixture.ts'

type Json = Record<string, any>

describe.each(PG_URL ? (['pglite', 'server'] as const) : (['pglite'] as const))('toolkit files are data, never SQL (%s)', (kind) => {
  const dir = tempDir()
  const backupFile = join(dir.path, 'backup.json')
  const planFile = join(dir.path, 'plan.json')
  let target: PostgresTarget
  let client: pg.Client
  let db: string
  const marker = join(dir.path, 'program-ran')
  const tables = async () => (await client.query<{ t: string }>(`SELECT relname AS t FROM pg_class WHERE relname LIKE 'pwned%'`)).rows.map((r) => r.t)
  const names = async () => (await readDefinitions(client)).map((t) => t.name).sort()

  /** The file as an attacker who knows the format writes it: `edit`, then every checksum computed again. */
  function forge(source: string, edit: (file: Json) => void, out: string): string {
    const file = JSON.parse(readFileSync(source, 'utf8')) as Json
    edit(file)
    for (const t of file.triggers ?? []) if (t.trigger_def) t.checksum = checksum(t.trigger_def, t.function_def)
    file.integrity = integrity(file)
    writeFileSync(out, JSON.stringify(file))
    return out
  }

  beforeAll(async () => {
    ;({ target, client, db } = await openFixture(join(dir.path, 'pg'), kind))
    expect((await cli('backup', '--db', db, '--out', backupFile)).status).toBe(0)
    expect((await cli('plan', '--db', db, '--out', planFile)).status).toBe(0)
  }, 120_000)

  afterAll(async () => {
    await client?.end()
    await target?.stop()
    dir.remove()
  })

  it('refuses a file edited in any field, the integrity checksum not recomputed, in one line', async () => {
    for (const [field, edit] of [
      ['a comment', (f: Json) => (f.triggers[0].function_comment = 'changed')],
      ['a signature', (f: Json) => (f.triggers[0].function_signature = 'public.other()')],
      ['the enabled state', (f: Json) => (f.triggers[0].enabled = 'D')],
      ['the time taken', (f: Json) => (f.taken_at = '2020-01-01T00:00:00.000Z')],
    ] as const) {
      const file = JSON.parse(readFileSync(backupFile, 'utf8'))
      edit(file)
      const edited = join(dir.path, 'edited.json')
      writeFileSync(edited, JSON.stringify(file))
      const r = await cli('restore', '--db', db, '--from', edited, '--yes')
      expect(r.status, field).toBe(1)
      expect(r.stderr.trim(), field).toMatch(/does not match its integrity checksum: it was edited or damaged; run actline triggers backup again$/)
    }
    const plan = JSON.parse(readFileSync(planFile, 'utf8'))
    plan.phases[2].triggers[0].function_signature = 'public.audit_row(); CREATE TABLE pwned_plan()'
    writeFileSync(join(dir.path, 'edited-plan.json'), JSON.stringify(plan))
    const r = await cli('drop', '--db', db, '--plan', join(dir.path, 'edited-plan.json'), '--phase', 'all', '--yes')
    expect(r.stderr.trim()).toMatch(/^triggers drop: .*edited-plan\.json does not match its integrity checksum/)
    // A plan of the version before the checksum is made again, not trusted.
    const { integrity: _, ...unsealed } = JSON.parse(readFileSync(planFile, 'utf8'))
    writeFileSync(join(dir.path, 'old-plan.json'), JSON.stringify({ ...unsealed, version: 1 }))
    expect((await cli('drop', '--db', db, '--plan', join(dir.path, 'old-plan.json'), '--phase', '1')).stderr.trim()).toMatch(/version 1 of actline-trigger-plan, which this actline does not take .*: run actline triggers plan again$/)
  })

  it('restores no definition the database did not back up, however well formed the file', async () => {
    const before = await names()
    const forged = forge(backupFile, (f) => {
      const t = f.triggers.find((x: Json) => x.name === 'users_audit')
      t.function_def = t.function_def.replace('RETURN NEW;', 'RETURN NULL;')
    }, join(dir.path, 'forged.json'))
    const r = await cli('restore', '--db', db, '--from', forged, '--trigger', 'users_audit', '--yes')
    expect(r.status).toBe(1)
    expect(r.stderr.trim()).toMatch(/^triggers restore: public\.users\.users_audit: no backup in this database's actline_trigger_backup holds these definitions; the file was edited, or is another database's$/)
    expect(await names()).toEqual(before)
  })

  it('into a database without the backup table, runs a definition only as one statement of its kind, naming its trigger', async () => {
    await client.query('ALTER TABLE actline_trigger_backup RENAME TO kept_backup')
    try {
      const cases: [string, (t: Json) => void, RegExp][] = [
        ['a second statement after the function', (t) => (t.function_def = `${t.function_def.trim()};\nCREATE TABLE pwned_fn()`), /the function definition of .* holds 2 statements/],
        ['another statement instead of the function', (t) => (t.function_def = 'CREATE TABLE pwned_str ()'), /the function definition of .* is a CreateStmt, not a CREATE FUNCTION/],
        ['a statement ahead of the function, the rest behind a line comment', (t) => (t.function_def = `CREATE TABLE pwned_str (); -- ${t.function_def}`), /the function definition of .* (holds \d+ statements|is not SQL PostgreSQL can parse)/],
        ['a program run instead of the trigger', (t) => (t.trigger_def = `COPY (SELECT 1) TO PROGRAM 'touch ${marker}'`), /the trigger definition of .* is a CopyStmt, not a CREATE TRIGGER/],
        ['a trigger on another table', (t) => (t.trigger_def = t.trigger_def.replace(' ON public.users ', ' ON public.orders ')), /the trigger definition of .*: it is on (public\.)?orders, not public\.users/],
        ['a trigger calling another function', (t) => (t.trigger_def = t.trigger_def.replace('audit_row()', 'take_stock()')), /the trigger definition of .*: it calls (public\.)?take_stock, not the function the backup recreates/],
        ['a state PostgreSQL does not have', (t) => (t.enabled = "O'; DROP TABLE users; --"), /public\.users\.users_audit in the backup: its state .* is not one PostgreSQL has/],
      ]
      for (const [what, edit, error] of cases) {
        const forged = forge(backupFile, (f) => edit(f.triggers.find((x: Json) => x.name === 'users_audit')), join(dir.path, 'forged.json'))
        for (const yes of [true, false]) {
          const r = await cli('restore', '--db', db, '--from', forged, '--trigger', 'users_audit', ...(yes ? ['--yes'] : []))
          expect(r.status, what).toBe(1)
          expect(r.stderr.trim(), what).toMatch(new RegExp(`^triggers restore: ${error.source}`))
        }
      }
      expect(await tables()).toEqual([])
      expect(existsSync(marker)).toBe(false)

      // Names, signatures and comments are data: quoted, or looked up in the catalog.
      const odd = forge(
        backupFile,
        (f) => {
          const t = f.triggers.find((x: Json) => x.name === 'users_audit')
          t.function_signature = "public.audit_row() IS NULL; CREATE TABLE pwned_sig(); COMMENT ON FUNCTION public.audit_row()"
          t.function_comment = "it's'); CREATE TABLE pwned_comment(); --"
          t.trigger_comment = "\\'; CREATE TABLE pwned_tcomment(); --"
        },
        join(dir.path, 'odd.json'),
      )
      const r = await cli('restore', '--db', db, '--from', odd, '--trigger', 'users_audit', '--yes')
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
      expect(await tables()).toEqual([])
      const { rows } = await client.query(`SELECT obj_description('audit_row'::regproc, 'pg_proc') AS f, obj_description(t.oid, 'pg_trigger') AS t FROM pg_trigger t WHERE t.tgname = 'users_audit'`)
      expect(rows[0]).toEqual({ f: "it's'); CREATE TABLE pwned_comment(); --", t: "\\'; CREATE TABLE pwned_tcomment(); --" })
    } finally {
      await client.query('ALTER TABLE kept_backup RENAME TO actline_trigger_backup')
      // The fixture's comments, as the backup has them.
      expect((await cli('restore', '--db', db, '--from', backupFile, '--trigger', 'users_audit', '--yes')).status).toBe(0)
    }
  })

  it('drops only what is audit or activity now, whatever the plan says, and functions as the catalog names them', async () => {
    const before = await names()
    // A business trigger written into the plan with its real checksum, which the backup table shows anyone who can read it.
    const stock = (await readDefinitions(client)).find((t) => t.name === 'orders_stock')!
    const forged = forge(
      planFile,
      (p) => {
        p.phases[2].triggers.push({ schema: 'public', table: 'orders', name: 'orders_stock', function_signature: stock.function_signature, kind: 'audit', events: ['INSERT'], checksum: stock.checksum, why: 'trust me' })
      },
      join(dir.path, 'forged-plan.json'),
    )
    for (const extra of [[], ['--include', 'notify,timestamp']]) {
      const r = await cli('drop', '--db', db, '--plan', forged, '--phase', '3', '--yes', ...extra)
      expect(r.status).toBe(1)
      expect(r.stderr.trim()).toMatch(/^triggers drop: not removable now, whatever the plan says: public\.orders\.orders_stock \(business: .*\); drop removes audit and activity triggers/)
    }
    expect(await names()).toEqual(before)

    // A signature carrying SQL is never pasted: the function dropped is the one the catalog names.
    const signature = forge(
      planFile,
      (p) => {
        for (const phase of p.phases) for (const t of phase.triggers) t.function_signature = 'public.audit_row(); CREATE TABLE pwned_drop()'
      },
      join(dir.path, 'signature-plan.json'),
    )
    const dry = await cli('drop', '--db', db, '--plan', signature, '--phase', '3', '--drop-functions')
    expect(dry.status, dry.stderr).toBe(0)
    expect(dry.stdout).not.toContain('pwned')
    const r = await cli('drop', '--db', db, '--plan', signature, '--phase', '3', '--drop-functions', '--yes')
    expect(r.status, r.stderr).toBe(0)
    expect(await tables()).toEqual([])
    expect(await names()).not.toContain('orders_activity')
    expect(await names()).toContain('orders_stock')
    // Put back for the next run of the file.
    expect((await cli('restore', '--db', db, '--from', backupFile, '--plan', planFile, '--phase', '3', '--yes')).status).toBe(0)
    expect(await names()).toEqual(before)
  })
})
