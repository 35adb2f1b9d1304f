/**
 * What a superuser can do to audit_log behind the append-only guard: run a
 * statement with triggers off (`session_replication_role = replica`), on one
 * connection of the pool, given back as it was.
 */
import type pg from 'pg'

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
