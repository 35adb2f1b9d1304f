/**
 * What a superuser can do to audit_log behind the append-only guard: run a
 * statement with triggers off (`session_replication_role = replica`), on one
 * connection of the pool, given back as it was.
 */
import type pg from 'pg'
import { parseActivity, type Activity } from '../../schemas/activity.ts'
import { PG_URL } from './stores.ts'

/** The audit tests' stores: the embedded one always, the server at PG_URL too. */
export const AUDIT_TARGETS = ['embedded', ...(PG_URL ? ['server'] : [])] as const

/** Invoices paid a second apart from `start`, each with `fields` over them. */
export function invoices(start = Date.UTC(2026, 10, 2, 12)): (fields?: Record<string, unknown>) => Activity {
  let clock = start
  return (fields = {}) => {
    const r = parseActivity({ action: 'invoice.paid', source: 'user', timestamp: (clock += 1000), ...fields }, Date.now())
    if (!r.ok) throw new Error(`bad fixture: ${JSON.stringify(r)}`)
    return r.activity
  }
}

export async function asSuperuser(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('SET session_replication_role = replica')
    await client.query(sql, params)
  } finally {
    await client.query('SET session_replication_role = DEFAULT')
    client.release()
  }
}
