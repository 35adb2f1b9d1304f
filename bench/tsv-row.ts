/**
 * The activity row as ClickHouse's TabSeparated text, measured by
 * bench:clickhouse-insert against JSONCompactEachRow (not shipped: it did
 * not pay, BENCHMARKS.md "Feeding ClickHouse"). TabSeparated needs only a tab, a
 * newline and a backslash escaped, and reads each field without JSON's
 * tokenizer; a row is one line, so the engine's parallel parser may split
 * the body at any newline.
 */
import type { Activity } from '../schemas/activity.ts'
import { AS_IS, compileRowEncoder, type FieldEncoding } from '../schemas/activity-row.ts'
import { clickhouseTime } from '../exporters/time-format.ts'

const SPECIAL = /[\\\t\n\r\0]/
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '\\0' }

/** A field's text, escaped as TabSeparated reads it back (most values need nothing). */
export function tsvText(v: string): string {
  return SPECIAL.test(v) ? v.replace(/[\\\t\n\r\0]/g, (c) => ESCAPES[c]!) : v
}

const QUOTED_SPECIAL = /[\\'\t\n\r\0]/
/** A string literal inside a Map's text: quoted, its quote and the line breaks escaped. */
function quoted(v: string): string {
  return `'${QUOTED_SPECIAL.test(v) ? v.replace(/[\\'\t\n\r\0]/g, (c) => (c === "'" ? "\\'" : ESCAPES[c]!)) : v}'`
}

/** Map(String, String) as TabSeparated reads it: `{'k':'v',...}`, no raw tab or newline. */
export function tsvMap(m: Record<string, string>): string {
  let out = '{'
  let first = true
  for (const k in m) {
    out += `${first ? '' : ','}${quoted(k)}:${quoted(m[k]!)}`
    first = false
  }
  return `${out}}`
}

const ENCODING: FieldEncoding = {
  ...AS_IS,
  time: (v) => `time(${v})`,
  text: (v) => `text(${v})`,
  'optional-text': (v) => `(${v} === undefined ? '' : text(${v}))`,
  'optional-number': (v) => `(${v} === undefined ? '\\\\N' : String(${v}))`,
  json: (v) => `(${v} === undefined ? '' : text(typeof ${v} === 'string' ? ${v} : JSON.stringify(${v})))`,
  ip: (v) => `(${v} ?? '\\\\N')`,
  map: (v) => `map(${v})`,
}

const fields: (a: Activity) => string[] = compileRowEncoder('array', ENCODING, { time: clickhouseTime, text: tsvText, map: tsvMap })

/** One activity as a TabSeparated line (no newline), in ACTIVITY_ROW order. */
export function toTsvRow(a: Activity): string {
  return fields(a).join('\t')
}
