/** What every toolkit command needs to write SQL for someone else's database. */
import type pg from 'pg'

export { quoteIdent } from '../../lib/sql.ts'

/**
 * A file one command wrote for another (a backup, a plan): JSON with its
 * format and version, or an error saying what it is not.
 */
export function parseToolkitFile<T extends { format: string; version: number }>(text: string, file: string, format: T['format'], command: string): T {
  let parsed: T
  try {
    parsed = JSON.parse(text) as T
  } catch {
    throw new Error(`${file} is not JSON: is it a file actline triggers ${command} wrote?`)
  }
  if (parsed?.format !== format || parsed.version !== 1) throw new Error(`${file} is not an ${format.replace(/-/g, ' ')} (format ${format}, version 1)`)
  return parsed
}

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
