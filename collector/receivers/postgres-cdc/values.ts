/**
 * A column's value as pgoutput sends it (PostgreSQL's text output) made a
 * JSON value both stores hold, without losing what it was. pg's type parsers
 * are not used: they turn `'NaN'::float8` into NaN (JSON null), `infinity`
 * and year 294276 into an invalid Date (null), `-0` into 0, and a json
 * document holding `"\ud800"` into a string no store accepts. Here:
 *
 * - integers and booleans are JSON numbers and booleans; float4/float8 are
 *   numbers when JSON can carry them exactly, else PostgreSQL's own text
 *   (`"NaN"`, `"Infinity"`, `"-Infinity"`, `"-0"`), which casts back;
 * - int8, numeric, bytea (`\x...` hex), uuid, enums, ranges, composites,
 *   intervals, network types: PostgreSQL's text, exactly;
 * - date and time types: ISO 8601 (the stream's session runs with
 *   DateStyle ISO and TimeZone UTC, so timestamptz ends in `Z`); a value
 *   ISO cannot write (`infinity`, BC, a year past 9999) keeps PostgreSQL's text;
 * - json/jsonb: the document, or its text as sent when a store could not hold
 *   it parsed (a lone surrogate escape, `\u0000`, nesting past the limit,
 *   a number past a double);
 * - arrays: a JSON array when every element is one of the above, else
 *   PostgreSQL's text;
 * - a value whose text is over `maxBytes` is a marker
 *   `{type, bytes, sha256}` of that text: an audit row says what changed,
 *   and the hash proves which value it was.
 *
 * docs/cdc.md ("Values") is the user's copy of these rules.
 */
import { createHash } from 'node:crypto'
import pg from 'pg'
import { LIMITS } from '../../../schemas/activity-input.ts'
import { inspectValue, storableText } from '../../../schemas/storable.ts'

/** Session settings of the replication connection: the text output the readers below expect, whatever the server's defaults. */
export const STREAM_SESSION = '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=1'

export interface OversizedValue {
  type: string
  bytes: number
  sha256: string
}

type Reader = (text: string) => unknown

const OID = { bool: 16, bytea: 17, int8: 20, int2: 21, int4: 23, text: 25, oid: 26, json: 114, float4: 700, float8: 701, varchar: 1043, date: 1082, time: 1083, timestamp: 1114, timestamptz: 1184, interval: 1186, timetz: 1266, numeric: 1700, uuid: 2950, jsonb: 3802 } as const
const TYPE_NAMES = new Map<number, string>(Object.entries(OID).map(([name, oid]) => [oid, name]))

const asText: Reader = (t) => storableText(t)
const integer: Reader = (t) => Number(t)
/** A float JSON carries exactly; NaN, the infinities and -0 as PostgreSQL writes them. */
const float: Reader = (t) => {
  const n = Number(t)
  return Number.isFinite(n) && !Object.is(n, -0) ? n : t
}

const json: Reader = (t) => {
  try {
    const value: unknown = JSON.parse(t)
    // details.new.<column> sits 4 levels into the activity.
    return 'message' in inspectValue(value, LIMITS.depth - 4) ? storableText(t) : value
  } catch {
    return storableText(t)
  }
}

/** `2026-12-07 21:00:00.123456+00` as `2026-12-07T21:00:00.123456Z`; what ISO cannot say stays as sent. */
const ISO_TIMESTAMP = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)(?:([+-]\d\d)(?::?(\d\d))?(?::?(\d\d))?)?$/
const timestamp: Reader = (t) => {
  const m = ISO_TIMESTAMP.exec(t)
  if (!m) return t
  const [, date, time, hours, minutes, seconds] = m
  if (hours === undefined) return `${date}T${time}`
  // Seconds in an offset (historic zones) have no ISO form.
  if (seconds !== undefined && seconds !== '00') return t
  const offset = `${hours}:${minutes ?? '00'}`
  return `${date}T${time}${offset === '+00:00' ? 'Z' : offset}`
}

const READERS = new Map<number, Reader>([
  [OID.bool, (t) => t === 't'],
  [OID.int2, integer],
  [OID.int4, integer],
  [OID.oid, integer],
  [OID.float4, float],
  [OID.float8, float],
  [OID.json, json],
  [OID.jsonb, json],
  [OID.timestamp, timestamp],
  [OID.timestamptz, timestamp],
])

/** Whether a parsed array holds a -0, which JSON writes as 0. */
function hasNegativeZero(value: unknown): boolean {
  return Array.isArray(value) ? value.some(hasNegativeZero) : Object.is(value, -0)
}

/** Element types whose array pg parses into numbers, booleans or text (never Dates, Buffers or objects). */
const PLAIN_ARRAY_ELEMENTS = new Set([1000, 1005, 1007, 1009, 1015, 1021, 1022, 1028])

function readerFor(typeOid: number): Reader {
  const known = READERS.get(typeOid)
  if (known) return known
  if (PLAIN_ARRAY_ELEMENTS.has(typeOid)) {
    const parse = pg.types.getTypeParser(typeOid) as (t: string) => unknown
    return (t) => {
      const parsed = parse(t)
      // The checks a json value gets (a lone surrogate, NaN, nesting deeper than an encoder takes), and -0.
      return !hasNegativeZero(parsed) && !('message' in inspectValue(parsed, LIMITS.depth - 4)) ? parsed : storableText(t)
    }
  }
  return asText
}

/** The type's name for a marker: pgoutput names a non-built-in type in its Type message. */
export function typeName(column: { typeOid: number; typeName?: string | null }): string {
  return column.typeName ?? TYPE_NAMES.get(column.typeOid) ?? `oid ${column.typeOid}`
}

/** The column's reader: PostgreSQL's text output to a storable JSON value, a marker past maxBytes. */
export function columnReader(column: { typeOid: number; typeName?: string | null }, maxBytes: number): Reader {
  const read = readerFor(column.typeOid)
  return (text) => {
    // Characters bound bytes from below: most values skip the byte count.
    if (text.length * 3 > maxBytes) {
      const bytes = Buffer.byteLength(text)
      if (bytes > maxBytes) return { type: typeName(column), bytes, sha256: createHash('sha256').update(text).digest('hex') } satisfies OversizedValue
    }
    return read(text)
  }
}
