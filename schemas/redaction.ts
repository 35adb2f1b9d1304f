/**
 * Which column values never leave the database's side: a column whose name
 * contains one of the words is stored as REDACTED, in every path that reads
 * row values (change-data capture today; the SDK's row values next). One
 * list, so a column hidden from one path is hidden from all.
 */
export const DEFAULT_REDACT = ['password', 'secret', 'token', 'key', 'ssn', 'card'] as const

export const REDACTED = '[redacted]'

/** A predicate on column names, case-insensitive, for the words given. */
export function redactor(words: readonly string[]): (column: string) => boolean {
  if (words.length === 0) return () => false
  const re = new RegExp(words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'i')
  return (column) => re.test(column)
}

/** `row` with the values of redacted columns replaced; the same object when none is. */
export function redactRow(row: Record<string, unknown>, redacted: (column: string) => boolean): Record<string, unknown> {
  let out: Record<string, unknown> | undefined
  for (const k of Object.keys(row)) {
    if (redacted(k) && row[k] !== null && row[k] !== undefined) (out ??= { ...row })[k] = REDACTED
  }
  return out ?? row
}
