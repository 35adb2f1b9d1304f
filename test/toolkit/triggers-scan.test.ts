/**
 * `actline triggers scan` on a real database that audits itself with
 * triggers: PGlite always, the PostgreSQL server at PG_URL too. Every
 * fixture trigger is read as the kind it is, no business trigger is ever
 * proposed for removal, and the command answers bad input in one line.
 */
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { scan } from '../../toolkit/triggers/scan.ts'
import { closedPort } from '../helpers/ports.ts'
import type { PostgresTarget } from '../helpers/postgres-target.ts'
import { PG_URL, tempDir } from '../helpers/stores.ts'
import { EXPECTED, openFixture, triggersCli as cli } from './trigger-fixture.ts'


describe.each(PG_URL ? (['pglite', 'server'] as const) : (['pglite'] as const))('actline triggers scan (%s)', (kind) => {
  const dir = tempDir()
  let target: PostgresTarget
  let client: pg.Client | undefined

  beforeAll(async () => {
    ;({ target, client } = await openFixture(join(dir.path, 'pg'), kind))
  }, 120_000)

  afterAll(async () => {
    await client?.end()
    await target?.stop()
    dir.remove()
  })

  it('reads every trigger as the kind it is, once, with its timing, events, level, WHEN and state', async () => {
    const r = await scan(client!)
    expect(Object.fromEntries(r.triggers.map((t) => [t.name, t.kind]))).toEqual(EXPECTED)
    // A foreign key's internal triggers are not listed; a partitioned table's trigger is listed once, on the parent.
    expect(r.triggers.some((t) => t.name.startsWith('RI_ConstraintTrigger'))).toBe(false)
    expect(r.triggers.filter((t) => t.name === 'events_audit').map((t) => t.table)).toEqual(['events'])
    const byName = Object.fromEntries(r.triggers.map((t) => [t.name, t]))
    expect(byName.users_audit).toMatchObject({ schema: 'public', table: 'users', function: 'public.audit_row', timing: 'AFTER', events: ['INSERT', 'UPDATE', 'DELETE'], level: 'ROW', enabled: true, remove: true })
    expect(byName.users_touch).toMatchObject({ timing: 'BEFORE', events: ['UPDATE'], enabled: false, remove: false })
    expect(byName.orders_notify!.when).toMatch(/old\.total IS DISTINCT FROM new\.total/i)
    expect(byName.orders_truncate).toMatchObject({ events: ['TRUNCATE'], level: 'STATEMENT' })
    expect(byName.orders_audit_deferred!.constraint).toBe(true)
    expect(r.summary).toMatchObject({ triggers: 15, tables: 4, removable: 6, by_kind: { audit: 5, activity: 1, notify: 2, timestamp: 2, business: 5 } })
  })

  it("leaves out actline's own triggers when the audit trail lives in the same database", async () => {
    await client!.query(`CREATE TABLE actline_probe (id int)`)
    await client!.query(`CREATE FUNCTION actline_probe_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`)
    await client!.query(`CREATE TRIGGER actline_probe_guard BEFORE UPDATE ON actline_probe FOR EACH ROW EXECUTE FUNCTION actline_probe_guard()`)
    try {
      const r = await scan(client!)
      expect(r.triggers.map((t) => t.table)).not.toContain('actline_probe')
      expect(r.summary.triggers).toBe(15)
    } finally {
      await client!.query(`DROP TABLE actline_probe`)
      await client!.query(`DROP FUNCTION actline_probe_guard()`)
    }
  })

  it('says why: the statement that decided, and what replaces the trigger', async () => {
    const byName = Object.fromEntries((await scan(client!)).triggers.map((t) => [t.name, t]))
    expect(byName.users_audit!.reason).toMatch(/^insert into audit_logs .*to_jsonb\(old\)/)
    expect(byName.orders_audit_helper!.reason).toMatch(/perform log_change\(.*\) -> insert into audit_logs/)
    expect(byName.orders_stock!.reason).toMatch(/^update products set stock/)
    expect(byName.orders_check!.reason).toMatch(/^raise exception/)
    expect(byName.orders_tax!.reason).toMatch(/new\.total := new\.total \* 1\.2/)
    expect(byName.orders_audit_stock!.reason).toMatch(/^update products/)
    expect(byName.orders_audit_dynamic!.reason).toMatch(/^execute format/)
    expect(byName.users_audit!.replacement).toMatch(/db\.insert\|update\|delete activities into audit_log/)
    expect(byName.users_touch!.replacement).toMatch(/column default/)
  })

  it('never proposes a business trigger for removal, whatever is included', async () => {
    const r = await scan(client!, { include: ['notify', 'timestamp'] })
    expect(r.triggers.filter((t) => t.kind === 'business' && t.remove)).toEqual([])
    expect(r.triggers.filter((t) => t.remove).map((t) => t.kind).sort()).toEqual(['activity', 'audit', 'audit', 'audit', 'audit', 'audit', 'notify', 'notify', 'timestamp', 'timestamp'])
    expect((await scan(client!, { schemas: ['nothing_here'] })).triggers).toEqual([])
  })

  it('prints JSON with the documented fields, and a table per table for people', async () => {
    const json = await cli('scan', '--db', target.url.toString(), '--json', '--include', 'notify')
    expect(json.status, json.stderr).toBe(0)
    const out = JSON.parse(json.stdout)
    expect(Object.keys(out)).toEqual(['triggers', 'summary'])
    for (const k of ['schema', 'table', 'name', 'function', 'timing', 'events', 'level', 'enabled', 'kind', 'remove', 'reason']) expect(out.triggers[0]).toHaveProperty(k)
    expect(out.triggers.find((t: any) => t.name === 'orders_notify').remove).toBe(true)
    const human = await cli('scan', '--db', target.url.toString())
    expect(human.status).toBe(0)
    expect(human.stdout).toMatch(/^public\.orders$/m)
    expect(human.stdout).toMatch(/^ {2}keep {4}business {3}orders_stock\s/m)
    expect(human.stdout).toMatch(/^15 triggers on 4 tables: 5 audit, 1 activity, 2 notify, 2 timestamp, 5 business; 6 proposed for removal$/m)
  })
})

describe('actline triggers, given bad input', () => {
  it('answers each in one line, with what to do, and never prints a password', async () => {
    const noDb = await cli('scan')
    expect([noDb.status, noDb.stderr.trim()]).toEqual([1, 'triggers scan: --db is required: the database URL, e.g. --db postgres://user@host:5432/dbname (or set ACTLINE_TRIGGERS_DB)'])
    const notUrl = await cli('scan', '--db', 'not a url')
    expect(notUrl.stderr.trim()).toBe('triggers scan: --db is not a URL: expected postgres://user[:password]@host[:port]/dbname')
    const closed = await cli('scan', '--db', `postgres://app:s3cret@127.0.0.1:${await closedPort()}/shop`)
    expect(closed.status).toBe(1)
    expect(closed.stderr.trim()).toMatch(/^triggers scan: cannot connect to postgres:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/shop: nothing listens there: is PostgreSQL running, and is the port right\?$/)
    expect(closed.stderr).not.toContain('s3cret')
    const include = await cli('scan', '--db', 'postgres://x@127.0.0.1/x', '--include', 'business')
    expect(include.stderr.trim()).toMatch(/^triggers scan: --include takes notify, timestamp/)
    const unknown = await cli('frobnicate')
    expect(unknown.status).toBe(2)
    expect((await cli('--help')).stdout).toContain('examples:')
  })
})
