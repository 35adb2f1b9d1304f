/**
 * `actline triggers plan` and `drop` on a real database (PGlite always, the
 * server at PG_URL too): the phases as planned; drop refuses without a
 * backup and after a change; backup -> drop every phase -> restore leaves
 * the catalog exactly as it was, also restored a phase at a time; business triggers are never touched.
 */
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readDefinitions } from '../../toolkit/triggers/backup.ts'
import { scan } from '../../toolkit/triggers/scan.ts'
import type { PostgresTarget } from '../helpers/postgres-target.ts'
import { PG_URL, tempDir } from '../helpers/stores.ts'
import { openFixture, triggersCli as cli } from './trigger-fixture.ts'


describe.each(PG_URL ? (['pglite', 'server'] as const) : (['pglite'] as const))('actline triggers plan and drop (%s)', (kind) => {
  const dir = tempDir()
  const planFile = join(dir.path, 'plan.json')
  const backupFile = join(dir.path, 'backup.json')
  let target: PostgresTarget
  let client: pg.Client
  let db: string
  const names = async () => (await readDefinitions(client)).map((t) => t.name).sort()

  beforeAll(async () => {
    ;({ target, client, db } = await openFixture(join(dir.path, 'pg'), kind))
  }, 120_000)

  afterAll(async () => {
    await client?.end()
    await target?.stop()
    dir.remove()
  })

  it('plans the removable triggers in phases: redundant, at parity, the rest', async () => {
    const r = await cli('plan', '--db', db, '--out', planFile, '--parity', 'users', '--json')
    expect(r.status, r.stderr).toBe(0)
    const plan = JSON.parse(r.stdout)
    const phase = (n: number) => plan.phases[n - 1].triggers.map((t: any) => t.name).sort()
    // Of two audit triggers on the same events, the first by name stays for a later phase.
    expect(phase(1)).toEqual(['orders_audit_helper', 'users_history'])
    expect(phase(2)).toEqual(['users_audit'])
    expect(phase(3)).toEqual(['events_audit', 'orders_activity', 'orders_audit_deferred'])
    expect(plan.phases[0].triggers.find((t: any) => t.name === 'users_history').why).toBe('redundant: users_audit already records audit on UPDATE')
    for (const p of plan.phases) for (const t of p.triggers) expect(t.checksum).toMatch(/^[0-9a-f]{64}$/)
  })

  it('refuses to drop what no backup holds, and changes nothing', async () => {
    const before = await names()
    const r = await cli('drop', '--db', db, '--plan', planFile, '--phase', 'all', '--yes')
    expect(r.status).toBe(1)
    expect(r.stderr.trim()).toMatch(/^triggers drop: no backup holds public\.\w+\.\w+.* as planned: run actline triggers backup first$/)
    expect(await names()).toEqual(before)
  })

  it('backup -> drop every phase -> restore leaves every trigger as it was; business triggers are never dropped', async () => {
    const before = await readDefinitions(client)
    expect((await cli('backup', '--db', db, '--out', backupFile)).status).toBe(0)
    const dry = await cli('drop', '--db', db, '--plan', planFile, '--phase', 'all')
    expect(dry.stdout).toMatch(/^-- would run \(nothing changed; add --yes to run this\):\n-- phase 1\nBEGIN;\nSET LOCAL lock_timeout = '5000ms';\nDROP TRIGGER/)
    expect(await readDefinitions(client)).toEqual(before)

    for (const phase of ['1', '2', '3']) {
      const r = await cli('drop', '--db', db, '--plan', planFile, '--phase', phase, '--yes')
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout.trim()).toBe(`phase ${phase}: dropped ${{ 1: 2, 2: 1, 3: 3 }[phase]} triggers`)
    }
    const left = await scan(client)
    expect(left.triggers.filter((t) => t.kind === 'audit' || t.kind === 'activity')).toEqual([])
    expect(left.summary.by_kind.business).toBe(5)
    // Again: nothing left to drop, and that is not an error.
    expect((await cli('drop', '--db', db, '--plan', planFile, '--phase', 'all', '--yes')).stdout).toContain('phase 1: dropped 0 triggers')

    // The rollback, a phase at a time, last dropped first: each restores just its own triggers.
    const dryRestore = await cli('restore', '--db', db, '--from', backupFile, '--plan', planFile, '--phase', '3')
    expect(dryRestore.stdout).toMatch(/^-- would restore 3 triggers \(nothing changed; add --yes to run this\):\n/)
    expect(await names()).not.toContain('events_audit')
    for (const [phase, back] of [['3', ['events_audit', 'orders_activity', 'orders_audit_deferred']], ['2', ['users_audit']]] as const) {
      const gone = await names()
      const r = await cli('restore', '--db', db, '--from', backupFile, '--plan', planFile, '--phase', phase, '--yes')
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout.trim()).toBe(`restored ${back.length} triggers; each is as backed up (definition, function, state, comments)`)
      expect(await names()).toEqual([...gone, ...back].sort())
    }
    const r = await cli('restore', '--db', db, '--from', backupFile, '--plan', planFile, '--phase', '1', '--yes')
    expect(r.status, r.stderr).toBe(0)
    expect(await readDefinitions(client)).toEqual(before)
    expect((await cli('restore', '--db', db, '--from', backupFile, '--phase', '1')).stderr.trim()).toBe('triggers restore: --phase needs --plan plan.json: the plan whose phase is restored')
    expect((await cli('restore', '--db', db, '--from', backupFile, '--plan', planFile, '--phase', '1', '--trigger', 'users_audit')).stderr.trim()).toBe('triggers restore: give --trigger or --plan with --phase, not both')
  })

  it('refuses a plan older than a change to a trigger’s function, naming it', async () => {
    await client.query(`CREATE OR REPLACE FUNCTION record_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO activities (action, entity_type, entity_id, actor) VALUES (lower(TG_OP), TG_TABLE_NAME, NEW.id::text, 'changed');
  RETURN NEW;
END $$`)
    const r = await cli('drop', '--db', db, '--plan', planFile, '--phase', '3', '--yes')
    expect(r.status).toBe(1)
    expect(r.stderr.trim()).toBe('triggers drop: changed since the plan was made (make a new plan): public.orders.orders_activity')
    expect(await names()).toContain('orders_activity')
  })

  it('drops a function with its last trigger, only when asked', async () => {
    expect((await cli('backup', '--db', db, '--out', backupFile)).status).toBe(0)
    expect((await cli('plan', '--db', db, '--out', planFile)).status).toBe(0)
    const r = await cli('drop', '--db', db, '--plan', planFile, '--phase', 'all', '--drop-functions', '--yes')
    expect(r.status, r.stderr).toBe(0)
    const fns = (await client.query(`SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1`)).rows.map((x) => x.proname)
    for (const gone of ['record_activity', 'audit_via_helper', 'users_history_row', 'audit_row']) expect(fns).not.toContain(gone)
    for (const kept of ['take_stock', 'check_total', 'touch_updated_at', 'notify_order', 'log_change']) expect(fns).toContain(kept)
    expect((await cli('restore', '--db', db, '--from', backupFile, '--yes')).status).toBe(0)
    expect((await cli('drop', '--db', db, '--plan', planFile, '--phase', '4')).stderr.trim()).toBe("triggers drop: --phase takes 1, 2, 3 or all, got '4'")
  })
})
