/** What every toolkit command needs to write SQL for someone else's database. */
import { createHash } from 'node:crypto'
import type pg from 'pg'

export { quoteIdent } from '../../lib/sql.ts'

/** JSON with every object's keys in order: the same value always gives the same text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(value)
}

/**
 * A file's `integrity`: SHA-256 of its canonical JSON without that field, so
 * an edit to any field, or damage, is found. It is no signature (anyone can
 * compute it again): what a file asks for is also checked against the live
 * catalog and PostgreSQL's parser before anything runs.
 */
export function integrity(file: object): string {
  const { integrity: _, ...rest } = file as { integrity?: string }
  return createHash('sha256').update(canonicalJson(rest)).digest('hex')
}

/**
 * A file one command wrote for another (a backup, a plan): JSON of its format,
 * one of `versions`, whose `integrity` (from version 2) matches its content;
 * or an error saying what it is not.
 */
export function parseToolkitFile<T extends { format: string; version: number }>(text: string, file: string, format: T['format'], command: string, versions: readonly number[] = [1]): T {
  let parsed: T & { integrity?: unknown }
  try {
    parsed = JSON.parse(text) as T
  } catch {
    throw new Error(`${file} is not JSON: is it a file actline triggers ${command} wrote?`)
  }
  const latest = Math.max(...versions)
  if (parsed?.format !== format) throw new Error(`${file} is not an ${format.replace(/-/g, ' ')} (format ${format}, version ${latest})`)
  if (!versions.includes(parsed.version)) throw new Error(`${file} is version ${String(parsed.version).slice(0, 16)} of ${format}, which this actline does not take (it takes ${versions.join(', ')}): run actline triggers ${command} again`)
  if (parsed.version >= 2 && parsed.integrity !== integrity(parsed)) throw new Error(`${file} does not match its integrity checksum: it was edited or damaged; run actline triggers ${command} again`)
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
