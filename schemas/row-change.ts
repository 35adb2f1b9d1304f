/**
 * One row change as an activity carries it, whichever path saw it: the
 * row's key as `entity_id` and `details.{old, new, changed}`. Change-data
 * capture (receivers.postgres_cdc) and the SDK's statement reading
 * (instrumentation/statement-rows.ts, through the span mapping) both build
 * it here, so an auditor reads one shape (docs/cdc.md, "What an activity
 * holds"; instrumentation/README.md, "Row identity and values").
 */
import { createHash } from 'node:crypto'
import { LIMITS } from './activity-input.ts'
import { REDACTED, redactRow } from './redaction.ts'
import { inspectValue, storableText } from './storable.ts'

export interface RowValues {
  /** The row's key columns and their values, when known. */
  key?: Record<string, unknown>
  old?: Record<string, unknown>
  new?: Record<string, unknown>
  /** Columns of an UPDATE whose value the source did not send because it did not change (PostgreSQL's unchanged TOAST). */
  unchanged?: string[]
}

/** The row's key as entity_id: the one key column's value, several as a JSON array, a redacted one as REDACTED; undefined without a whole key. */
export function entityIdOf(key: readonly string[], row: Record<string, unknown> | undefined, redacted: (column: string) => boolean): string | undefined {
  if (!row || key.length === 0) return undefined
  if (key.some(redacted)) return REDACTED
  const values = key.map((c) => row[c])
  if (values.some((v) => v === undefined || v === null)) return undefined
  return boundedId(values.length === 1 && typeof values[0] !== 'object' ? String(values[0]) : JSON.stringify(values.length === 1 ? values[0] : values))
}

/**
 * A key as entity_id can hold it: valid text, at most LIMITS.shortText
 * characters. A longer key keeps its start and a SHA-256 of the whole, so
 * two long keys stay two ids.
 */
function boundedId(id: string): string {
  const text = storableText(id)
  if (text.length <= LIMITS.shortText) return text
  return `${text.slice(0, 160)}… sha256:${createHash('sha256').update(id).digest('hex')}`
}


/** `details` of a row change: old and new values, redacted, and which columns an update changed; undefined when nothing is known. */
export function changeDetails(values: RowValues, redacted: (column: string) => boolean): Record<string, unknown> | undefined {
  const details: Record<string, unknown> = {}
  if (values.old) details.old = redactRow(values.old, redacted)
  if (values.new) details.new = redactRow(values.new, redacted)
  if (values.old && values.new) {
    details.changed = Object.keys(values.new).filter((k) => k in values.old! && JSON.stringify(values.old![k]) !== JSON.stringify(values.new![k]))
  }
  if (values.unchanged) details.unchanged = values.unchanged
  if (!values.old && !values.new) return undefined
  // Only a wide row can pass what one activity's details may hold (each value is bounded): measured then, and cut to its column names.
  const columns = Object.keys(values.new ?? {}).length + Object.keys(values.old ?? {}).length
  if (columns * MAX_TEXT > LIMITS.details / 2) {
    const size = JSON.stringify(details).length
    if (size > LIMITS.details - 1024) {
      return { values_omitted: `${size} characters of values, over the ${LIMITS.details} one activity's details hold`, columns: Object.keys(values.new ?? values.old ?? {}) }
    }
  }
  return details
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
  for (const k of Object.keys(row)) out[k] = plain(row[k])
  return out
}

function plain(v: unknown): unknown {
  if (v === null || v === undefined) return null
  // Cut first: a 10 MB value costs what its first 1,024 characters do.
  if (typeof v === 'string') return v.length > MAX_TEXT ? `${storableText(v.slice(0, MAX_TEXT))}… (${v.length} characters)` : storableText(v)
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v)
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'boolean') return v
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? String(v) : v.toISOString()
  if (v instanceof Uint8Array) return v.length > MAX_TEXT / 2 ? `[${v.length} bytes]` : `\\x${Buffer.from(v).toString('hex')}`
  try {
    const text = JSON.stringify(v)
    if (text === undefined) return null
    if (text.length > MAX_TEXT) return `[${text.length} characters of JSON]`
    const value: unknown = JSON.parse(text)
    // Nested too deep, a lone surrogate or a NUL inside: the collector would refuse the whole activity for it.
    const problem = inspectValue(value, LIMITS.depth - 4)
    return 'message' in problem ? `[a JSON value the stores cannot hold: it ${problem.message}]` : value
  } catch {
    return '[not serialisable]'
  }
}
