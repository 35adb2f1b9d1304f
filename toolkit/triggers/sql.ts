/** What every toolkit command needs to write SQL for someone else's database. */
import type pg from 'pg'

export const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`

/** Runs `work` in a transaction: committed when it resolves, rolled back when it throws. */
export async function inTransaction<T>(client: pg.ClientBase, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN')
  try {
    const result = await work()
    await client.query('COMMIT')
    return result
  } catch (err) {
    await client.query('ROLLBACK')
    throw err
  }
}
