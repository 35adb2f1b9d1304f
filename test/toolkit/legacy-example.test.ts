/**
 * examples/legacy-db, the database people try the toolkit on: its 64
 * triggers on 18 tables are read as expected.json says (the kind each was
 * written as), no business trigger is ever proposed for removal, the plan's
 * phases are the walk-through's, and its workload runs on every trigger.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPostgresTarget, type PostgresTarget } from '../helpers/postgres-target.ts'
import { PG_URL, tempDir } from '../helpers/stores.ts'
import { triggersCli as cli } from './trigger-fixture.ts'

const EXAMPLE = join(import.meta.dirname, '../../examples/legacy-db')
const EXPECTED: Record<string, string> = JSON.parse(readFileSync(join(EXAMPLE, 'expected.json'), 'utf8'))
const USER_FACING = 'organizations,users,user_profiles,sessions,api_tokens,memberships,projects,project_members,investors,investments'

function workload(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [join(EXAMPLE, 'workload.mjs'), ...args], { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  )
}

describe.each(PG_URL ? (['pglite', 'server'] as const) : (['pglite'] as const))('examples/legacy-db (%s)', (kind) => {
  const dir = tempDir()
  let target: PostgresTarget
  let db: string

  beforeAll(async () => {
    target = await startPostgresTarget(join(dir.path, 'pg'), kind)
    db = target.url.toString()
    const setup = await workload('--db', db, '--setup')
    expect(setup.status, setup.stderr).toBe(0)
  }, 180_000)

  afterAll(async () => {
    await target?.stop()
    dir.remove()
  })

  it('has 64 triggers on 18 tables, each read as the kind it was written as; no business trigger is removable', async () => {
    const r = await cli('scan', '--db', db, '--json')
    expect(r.status, r.stderr).toBe(0)
    const { triggers, summary } = JSON.parse(r.stdout)
    expect(summary).toEqual({ triggers: 64, tables: 18, removable: 36, by_kind: { audit: 24, activity: 12, notify: 6, timestamp: 14, business: 8 } })
    expect(Object.fromEntries(triggers.map((t: any) => [t.name, t.kind]))).toEqual(EXPECTED)
    for (const t of triggers) expect(t.remove, t.name).toBe(t.kind === 'audit' || t.kind === 'activity')
    const withNotify = JSON.parse((await cli('scan', '--db', db, '--include', 'notify,timestamp', '--json')).stdout)
    expect(withNotify.triggers.filter((t: any) => t.remove).length).toBe(56)
    expect(withNotify.triggers.filter((t: any) => t.kind === 'business' && t.remove)).toEqual([])
  })

  it('plans the phases of the walk-through: 6 redundant, 17 user-facing at parity, 13 more', async () => {
    const r = await cli('plan', '--db', db, '--parity', USER_FACING, '--json')
    expect(r.status, r.stderr).toBe(0)
    const plan = JSON.parse(r.stdout)
    expect(plan.phases.map((p: any) => p.triggers.length)).toEqual([6, 17, 13])
    expect(plan.phases[0].triggers.map((t: any) => t.name).sort()).toEqual(
      ['api_tokens_audit_legacy', 'investments_audit_legacy', 'payments_audit_legacy', 'projects_audit_history', 'subscriptions_audit_history', 'users_audit_history'],
    )
  })

  it('runs its workload on every trigger; the business triggers do their work', async () => {
    const r = await workload('--db', db, '--seconds', '2', '--clients', '2', '--json')
    expect(r.status, r.stderr).toBe(0)
    const result = JSON.parse(r.stdout)
    expect(result.failed).toBe(0)
    expect(result.transactions).toBeGreaterThan(50)
    const c = new pg.Client({ connectionString: db })
    await c.connect()
    try {
      const q = async (sql: string) => Number((await c.query(sql)).rows[0].n)
      // Stock kept by orders_stock, member counts by memberships_count, invoices settled by payments_settle.
      expect(await q(`SELECT 50::bigint * 1000000000 - sum(stock) AS n FROM products`)).toBe(await q(`SELECT sum(quantity) AS n FROM orders`))
      expect(await q(`SELECT sum(member_count) AS n FROM organizations`)).toBe(await q(`SELECT count(*) AS n FROM memberships`))
      expect(await q(`SELECT count(*) AS n FROM invoices i JOIN payments p ON p.invoice_id = i.id WHERE i.status <> 'paid'`)).toBe(0)
      expect(await q(`SELECT count(*) AS n FROM audit_logs`)).toBeGreaterThan(result.transactions)
    } finally {
      await c.end()
    }
  }, 60_000)
})
