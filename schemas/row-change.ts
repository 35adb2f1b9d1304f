/**
 * One row change as an activity carries it, whichever path saw it: the
 * row's key as `entity_id` and `details.{old, new, changed}`. Change-data
 * capture (receivers.postgres_cdc) and the SDK's statement reading
 * (instrumentation/statement-rows.ts, through the span mapping) both build
 * it here, so an auditor reads one shape (docs/cdc.md, "What an activity
 * holds"; instrumentation/README.md, "Row identity and values").
 */
import { REDACTED, redactRow } from './redaction.ts'

export interface RowValues {
  /** The row's key columns and their values, when known. */
  key?: Record<string, unknown>
  old?: Record<string, unknown>
  new?: Record<string, unknown>
}

/** The row's key as entity_id: the one key column's value, several as a JSON array, a redacted one as REDACTED; undefined without a whole key. */
export function entityIdOf(key: readonly string[], row: Record<string, unknown> | undefined, redacted: (column: string) => boolean): string | undefined {
  if (!row || key.length === 0) return undefined
  if (key.some(redacted)) return REDACTED
  const values = key.map((c) => row[c])
  if (values.some((v) => v === undefined || v === null)) return undefined
  return values.length === 1 ? String(values[0]) : JSON.stringify(values)
}

/** `details` of a row change: old and new values, redacted, and which columns an update changed; undefined when nothing is known. */
export function changeDetails(values: RowValues, redacted: (column: string) => boolean): Record<string, unknown> | undefined {
  const details: Record<string, unknown> = {}
  if (values.old) details.old = redactRow(values.old, redacted)
  if (values.new) details.new = redactRow(values.new, redacted)
  if (values.old && values.new) {
    details.changed = Object.keys(values.new).filter((k) => k in values.old! && JSON.stringify(values.old![k]) !== JSON.stringify(values.new![k]))
  }
  return Object.keys(details).length > 0 ? details : undefined
}
