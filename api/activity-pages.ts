/**
 * Newest-first pages of raw activities with a keyset cursor: a page ends at
 * (timestamp, id) and the next starts strictly below it, so rows inserted
 * meanwhile never shift a page (as OFFSET would) and no row is served twice.
 * /activities serves one page; /export walks them all.
 */
import { z } from 'zod'
import type { ClickHouseReader } from '../schemas/component.ts'
import { ACTIVITY_ROW, type FieldKind } from '../schemas/activity-row.ts'
import { ActlineError } from '../schemas/errors.ts'
import { DimensionFilters, RowFilters, storableTime, TimeRange, type Filters } from './query-params.ts'
import { clickhouseWhere } from './sql-filters.ts'

const nullableText = z.string().nullable()

/** Each kind of field as the API returns it: times in ISO 8601 UTC, absent optional fields null. */
const API_TYPE = {
  uuid: z.string(),
  time: z.string().meta({ description: 'ISO 8601, UTC, millisecond precision' }),
  text: z.string(),
  'optional-text': nullableText,
  'optional-number': z.number().nullable(),
  json: z.unknown().meta({ description: 'the object or string sent, or null' }),
  ip: nullableText,
  map: z.record(z.string(), z.string()),
} as const satisfies Record<FieldKind, z.ZodType>

type RowShape = { [F in (typeof ACTIVITY_ROW)[number] as F['name']]: (typeof API_TYPE)[F['kind']] }

/** A row as the API returns it (activities, export), its fields in ACTIVITY_ROW order. */
export const ActivityRow = z.strictObject(Object.fromEntries(ACTIVITY_ROW.map((f) => [f.name, API_TYPE[f.kind]])) as RowShape)
export type ActivityRow = z.output<typeof ActivityRow>

/** The query string of a paged listing (/activities, /audit): the filters, a page size and the cursor. */
export const PageQuery = TimeRange.extend(DimensionFilters.shape)
  .extend(RowFilters.shape)
  .extend({
    limit: z.coerce.number().int().min(1).max(1000).default(100).meta({ description: 'rows per page, at most 1000' }),
    cursor: z.string().max(200).optional().meta({ description: 'next_cursor of the previous page' }),
  })
  .strict()

/** A page's body: its rows and the cursor of the next page. */
export function pageBody<Row extends z.ZodType>(row: Row) {
  return z
    .object({
      data: z.array(row),
      next_cursor: z.string().nullable().meta({ description: 'pass as cursor for the next page; null on the last' }),
    })
    .strict()
}

export interface Cursor {
  /** The last row's timestamp as ClickHouse prints it (millisecond precision, UTC). */
  timestamp: string
  id: string
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.timestamp, c.id])).toString('base64url')
}

/** ClickHouse's DateTime64(3) text. */
const CLICKHOUSE_TIME = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * Undo encodeCursor; `time` is the timestamp format the store issued it in.
 * A cursor is the client's to send, so it is checked like any input: its
 * time must be a real instant the stores hold (2026-13-45 matches the
 * pattern) and its id a UUID, or the store would be the one to refuse it.
 */
export function decodeCursor(text: string, time: RegExp = CLICKHOUSE_TIME): Cursor {
  try {
    const [timestamp, id] = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown[]
    if (typeof timestamp === 'string' && time.test(timestamp) && typeof id === 'string' && UUID.test(id) && realInstant(timestamp)) {
      return { timestamp, id }
    }
  } catch {
    // falls through to the error below
  }
  throw new ActlineError('ACT_ERR_VALIDATION', 'cursor is not one this API issued: pass next_cursor from the previous page unchanged', {
    param: 'cursor',
    issues: [{ parameter: 'cursor', message: 'malformed' }],
  })
}

/** The text names a real UTC instant (no month 13, no February 30) within 1900-2299. */
function realInstant(text: string): boolean {
  const iso = `${text.replace(' ', 'T').replace(/Z$/, '')}Z`
  const ms = Date.parse(iso)
  if (!storableTime(ms)) return false
  const back = new Date(ms).toISOString()
  return back.slice(0, 19) === iso.slice(0, 19)
}

/**
 * Each kind of field as selected from ClickHouse. Times as text under their
 * own names (an alias named `timestamp` would shadow the column in ORDER BY),
 * addresses as text.
 */
const SELECT: Partial<Record<FieldKind, (name: string) => string>> = {
  time: (name) => `toString(${name}) AS ${name}_text`,
  ip: (name) => `if(isNull(${name}), NULL, IPv6NumToString(assumeNotNull(${name}))) AS ${name}`,
}

const SELECT_LIST = ACTIVITY_ROW.map((f) => SELECT[f.kind]?.(f.name) ?? f.name).join(', ')

/** A row as selected. */
type Raw = Record<string, unknown> & { id: string; timestamp_text: string }

/** Back from ClickHouse's forms: empty text is an absent field, details JSON text, IPv4 unmapped. */
const FROM_CLICKHOUSE: Partial<Record<FieldKind, (raw: Raw, name: string) => unknown>> = {
  time: (raw, name) => `${(raw[`${name}_text`] as string).replace(' ', 'T')}Z`,
  'optional-text': (raw, name) => (raw[name] === '' ? null : raw[name]),
  // Objects were stored as JSON text; a plain string detail stays a string.
  json: (raw, name) => {
    const text = raw[name] as string
    return text === '' ? null : text[0] === '{' || text[0] === '[' ? safeJson(text) : text
  },
  ip: (raw, name) => {
    const ip = raw[name] as string | null
    return ip?.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip
  },
}

function toApi(raw: Raw): ActivityRow {
  const row: Record<string, unknown> = {}
  for (const f of ACTIVITY_ROW) {
    const from = FROM_CLICKHOUSE[f.kind]
    row[f.name] = from ? from(raw, f.name) : raw[f.name]
  }
  return row as ActivityRow
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const DAY = 86_400_000
/**
 * Reading in key order still opens every monthly partition and scans each
 * until the filter matches (a rare filter over a year of 10M rows: ~200 ms),
 * so a page is first looked for in the last day back from where it starts.
 * A window holding more rows than the page is exact: every row outside it is
 * older. One holding too few is widened by what it showed of the filter's
 * density (aiming at twice the page), at least fourfold, and past a year to
 * everything: a common filter stops after a day, a rare one jumps to the
 * span it needs instead of stepping through every size on the way.
 */
const FIRST_WINDOW_MS = DAY
const LAST_WINDOW_MS = 400 * DAY

/** One page, and the cursor of the next one (undefined on the last page). */
export async function readPage(
  reader: ClickHouseReader,
  filters: Filters,
  limit: number,
  after?: Cursor,
  signal?: AbortSignal,
): Promise<{ rows: ActivityRow[]; next?: Cursor }> {
  // A needle (one actor, entity or trace) is sparse: a day would rarely fill
  // a page, so a bounded range is read in one query, its bloom filters
  // skipping what they can.
  if (filters.from !== undefined && (filters.actor ?? filters.entity_id ?? filters.trace_id) !== undefined) {
    return readWindow(reader, filters, limit, after, signal)
  }
  const anchor = after ? Date.parse(`${after.timestamp.replace(' ', 'T')}Z`) : (filters.to ?? Date.now())
  for (let window = FIRST_WINDOW_MS; ; ) {
    const lower = anchor - window
    const last = window === Infinity || (filters.from !== undefined && lower <= filters.from)
    const page = await readWindow(reader, last ? filters : { ...filters, from: lower }, limit, after, signal)
    if (last || page.next) return page
    const wanted = page.rows.length === 0 ? 16 : Math.ceil((2 * (limit + 1)) / page.rows.length)
    window *= Math.max(4, wanted)
    if (window > LAST_WINDOW_MS) window = Infinity
  }
}

async function readWindow(
  reader: ClickHouseReader,
  filters: Filters,
  limit: number,
  after: Cursor | undefined,
  signal: AbortSignal | undefined,
): Promise<{ rows: ActivityRow[]; next?: Cursor }> {
  const { where, params } = clickhouseWhere(filters)
  let keyset = ''
  if (after) {
    params.cursor_ts = after.timestamp
    params.cursor_id = after.id
    // The bare timestamp bound lets the primary key prune; the tuple breaks ties.
    keyset = ` AND timestamp <= toDateTime64({cursor_ts:String}, 3, 'UTC') AND (timestamp, id) < (toDateTime64({cursor_ts:String}, 3, 'UTC'), toUUID({cursor_id:String}))`
  }
  params.limit = limit + 1
  // The hour bucket leads the order as it leads the table's sort key, so
  // ClickHouse reads in key order and stops after the page.
  const raw = await reader.rows<Raw>(
    `SELECT ${SELECT_LIST}
FROM ${reader.database}.activities
WHERE ${where}${keyset}
ORDER BY toStartOfHour(timestamp) DESC, timestamp DESC, id DESC
LIMIT {limit:UInt32}`,
    params,
    signal,
  )
  const page = takePage(raw, limit, (r) => ({ timestamp: r.timestamp_text, id: r.id }))
  return { rows: page.rows.map(toApi), ...(page.next && { next: page.next }) }
}

/** How many rows the filters match: the listing's WHERE, counted by the engine. */
export async function countRows(reader: ClickHouseReader, filters: Filters, signal?: AbortSignal): Promise<number> {
  const { where, params } = clickhouseWhere(filters)
  const [row] = await reader.rows<{ n: string | number }>(`SELECT count() AS n FROM ${reader.database}.activities WHERE ${where}`, params, signal)
  return Number(row?.n ?? 0)
}

/**
 * A keyset page from a query that asked for `limit + 1` rows: the extra row
 * only says a next page exists, whose cursor is the last row kept.
 */
export function takePage<R>(rows: R[], limit: number, cursorOf: (row: R) => Cursor): { rows: R[]; next?: Cursor } {
  if (rows.length <= limit) return { rows }
  const kept = rows.slice(0, limit)
  return { rows: kept, next: cursorOf(kept.at(-1)!) }
}
