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

/**
 * Characters kept of one string value an app wrote: the audit row says what
 * changed, it is not a copy of the document. (Change-data capture keeps whole
 * values: the server bounds them, and a row too big is stored without them.)
 */
const MAX_TEXT = 1024

/** A JSON-safe, bounded copy of values an app wrote (bound parameters, returned rows, what it was given). */
export function boundedRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(row)) out[k] = plain(v)
  return out
}

function plain(v: unknown): unknown {
  if (v === null || v === undefined) return null
  if (typeof v === 'string') return v.length > MAX_TEXT ? `${v.slice(0, MAX_TEXT)}… (${v.length} characters)` : v
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v)
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'boolean') return v
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? String(v) : v.toISOString()
  if (v instanceof Uint8Array) return v.length > MAX_TEXT / 2 ? `[${v.length} bytes]` : `\\x${Buffer.from(v).toString('hex')}`
  try {
    const text = JSON.stringify(v)
    return text === undefined ? null : text.length > MAX_TEXT ? `[${text.length} characters of JSON]` : JSON.parse(text)
  } catch {
    return '[not serialisable]'
  }
}
