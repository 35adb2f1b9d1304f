/**
 * Span to activity: the one mapping shared by the app-side ActivitySpanProcessor
 * and the collector's OTLP receiver, so a span becomes the same activity
 * whichever way it travels. It reads a neutral SpanRecord (both sides convert
 * into it) and returns an unvalidated activity: the collector validates it
 * like any other, so a bad mapped value is a rejected item, never a crash.
 *
 * Three kinds of span become activities; every other span is not one:
 * 1. a span carrying `activity.action` (set by the app: an explicit activity);
 * 2. an HTTP server span: an `api` activity (method, route, status code);
 * 3. a database client span running INSERT, UPDATE or DELETE: a `database`
 *    activity on the table. This is what replaces row-level audit triggers.
 */
import { LIMITS, type ActivityInputType } from './activity-input.ts'
import { stableUuidv7 } from './uuidv7.ts'

export type SpanKindName = 'unspecified' | 'internal' | 'server' | 'client' | 'producer' | 'consumer'

/** OTel attribute values, after either side's decoding. */
export type SpanAttributeValue = string | number | boolean | bigint | null | undefined | readonly unknown[]

export interface SpanRecord {
  name: string
  kind: SpanKindName
  /** 32 lowercase hex characters. */
  traceId: string
  /** 16 lowercase hex characters. */
  spanId: string
  /** Epoch milliseconds. */
  startTimeMs: number
  durationMs: number
  attributes: Readonly<Record<string, SpanAttributeValue>>
  status: 'unset' | 'ok' | 'error'
  statusMessage?: string
  /** Resource attributes: service.name and the like. */
  resource: Readonly<Record<string, SpanAttributeValue>>
}

/** Attribute keys `activity.<field>` set the activity's field of that name. */
export const ACTIVITY_ATTRIBUTE_PREFIX = 'activity.'

const ACTIVITY_ATTRIBUTE_FIELDS = [
  'source', 'category', 'severity', 'status', 'entity_type', 'entity_id', 'actor_id', 'tenant_id',
  'correlation_id', 'details', 'ip', 'user_agent',
] as const

/** Data-modifying statements: the ones audit triggers fired on. */
const MODIFYING = new Set(['insert', 'update', 'delete'])

/**
 * The rows a write span wrote, as the SDK's pg hooks read them from the
 * statement (instrumentation/pg-row-hooks.ts): JSON of DbRows. Its values
 * were redacted in the app.
 */
export const DB_ROWS_ATTRIBUTE = 'actline.db.rows'

/**
 * Rows one span may become, whoever sent it: a span over OTLP is anyone's,
 * and one attribute must not turn into a million activities. Past this, the
 * rest are counted in the last one (the SDK lists 100 by default).
 */
export const MAX_SPAN_ROWS = 1000

export interface DbRowEntry {
  entity_id?: string
  details?: Record<string, unknown>
}

export interface DbRows {
  rows: DbRowEntry[]
  /** Rows written beyond those listed. */
  omitted?: number
  /** What the server said the statement affected. */
  row_count?: number
}

/**
 * The activities of a span: spanToActivity's one, or, for a write whose span
 * lists its rows, one per row (each with its key and values) and, past the
 * listed ones, one that counts the rest. Each row's id comes from the span's
 * and the row's place, so a span sent twice is one set of rows. `given`:
 * the rows as the SDK's own hook read them (instrumentation/hooks), instead
 * of from the span's attribute.
 */
export function spanToActivities(span: SpanRecord, given?: DbRows, mint?: () => string): ActivityInputType[] {
  const base = spanToActivity(span)
  if (!base) return []
  // Rows the app-side hook read itself come as they are; from a span, they are JSON anyone may have written.
  const rows = base.source === 'database' ? (given ?? dbRows(span.attributes[DB_ROWS_ATTRIBUTE])) : undefined
  if (!rows) {
    if (mint) base.id = mint()
    return [base]
  }
  const ts = base.timestamp as number
  const baseDetails = base.details as Record<string, unknown> | undefined
  // The SDK's own hook mints ids as the logging API does (its client retries with them); a span's are derived from it.
  const id = mint ?? ((i: number) => stableUuidv7(ts, 'actline-span', span.traceId, span.spanId, String(i)))
  // A row the statement does not name stands for all it matched: it says how many.
  const count = rows.row_count !== undefined && rows.rows.length === 1 && rows.rows[0]!.entity_id === undefined ? rows.row_count : undefined
  const out: ActivityInputType[] = []
  for (let i = 0; i < rows.rows.length; i++) {
    const row = rows.rows[i]!
    // The last row takes the base itself: a write of one row (the common one) copies nothing.
    const activity: ActivityInputType = i === rows.rows.length - 1 && !rows.omitted ? base : { ...base }
    activity.id = id(i)
    if (row.entity_id !== undefined) activity.entity_id = row.entity_id
    if (count === undefined && baseDetails === undefined) {
      if (row.details !== undefined) activity.details = row.details
    } else {
      const details: Record<string, unknown> = { ...row.details }
      if (count !== undefined) details.row_count = count
      if (baseDetails) Object.assign(details, baseDetails)
      activity.details = details
    }
    out.push(activity)
  }
  if (rows.omitted) {
    out.push({ ...base, id: id(rows.rows.length), details: { ...baseDetails, rows_omitted: rows.omitted, ...(rows.row_count !== undefined && { row_count: rows.row_count }) } })
  }
  return out
}

/** The attribute's rows when it is the JSON DbRows holds; undefined otherwise (a truncated attribute, another SDK's). */
function dbRows(value: SpanAttributeValue): DbRows | undefined {
  if (typeof value !== 'string') return undefined
  let v: unknown
  try {
    v = JSON.parse(value)
  } catch {
    return undefined
  }
  if (typeof v !== 'object' || v === null || !Array.isArray((v as DbRows).rows)) return undefined
  const d = v as DbRows
  const listed = d.rows.filter((r): r is DbRowEntry => typeof r === 'object' && r !== null)
  const rows = listed.slice(0, MAX_SPAN_ROWS).map((r) => ({
    ...(typeof r.entity_id === 'string' && { entity_id: r.entity_id }),
    ...(typeof r.details === 'object' && r.details !== null && !Array.isArray(r.details) && { details: r.details }),
  }))
  const beyond = (Number.isSafeInteger(d.omitted) && d.omitted! > 0 ? d.omitted! : 0) + listed.length - rows.length
  const omitted = beyond > 0 ? beyond : undefined
  const rowCount = Number.isSafeInteger(d.row_count) ? d.row_count : undefined
  if (rows.length === 0 && !omitted) return rowCount === 0 ? { rows: [] } : undefined
  return { rows, ...(omitted && { omitted }), ...(rowCount !== undefined && { row_count: rowCount }) }
}

/**
 * Leading blanks and comments, each matched one way only: a block comment
 * ends at its first `*\/` and cannot stretch over the next one. With a lazy
 * `[\s\S]*?` (every comment could end at any later `*\/`) a statement of
 * 22 empty comments took 35 ms to refuse, and each two more four times as
 * long (30: ~9 s); the collector maps statements from anyone's spans.
 */
const LEADING_COMMENTS = String.raw`(?:\s|--[^\n]*\n|/\*(?:[^*]|\*(?!/))*\*/)*`

const WRITE_TEXT = new RegExp(`^${LEADING_COMMENTS}(?:insert|update|delete|merge|with)\\b`, 'i')

/** Whether a statement's first word (after blanks and comments) is one that may write: INSERT, UPDATE, DELETE, MERGE or WITH. */
export function mayWrite(text: string): boolean {
  return WRITE_TEXT.test(text)
}

/**
 * False when a span cannot become an activity, decided from its kind and
 * attributes alone, before anything is copied: an app's SDK ends many spans
 * (reads, BEGIN, COMMIT, outgoing calls) and each must cost it nothing
 * here. True means "map it and see": spanToActivity decides.
 */
export function mayBeActivity(kind: SpanKindName, a: Readonly<Record<string, SpanAttributeValue>>): boolean {
  if (a['activity.action'] !== undefined) return true
  if (kind === 'server') return a['http.request.method'] !== undefined || a['http.method'] !== undefined
  if (kind !== 'client' || (a['db.system.name'] === undefined && a['db.system'] === undefined)) return false
  const operation = a['db.operation.name'] ?? a['db.operation']
  if (typeof operation === 'string') return MODIFYING.has(operation.toLowerCase())
  const text = a['db.query.text'] ?? a['db.statement']
  return typeof text === 'string' && mayWrite(text)
}

export function spanToActivity(span: SpanRecord): ActivityInputType | undefined {
  const a = span.attributes
  if (typeof a['activity.action'] === 'string') return explicitActivity(span)
  if (span.kind === 'server') {
    const method = str(a['http.request.method']) ?? str(a['http.method'])
    if (method) return httpServerActivity(span, method)
  }
  if (span.kind === 'client' && (a['db.system.name'] !== undefined || a['db.system'] !== undefined)) {
    return databaseActivity(span)
  }
  return undefined
}

function explicitActivity(span: SpanRecord): ActivityInputType {
  const a = span.attributes
  const activity = common(span, a['activity.action'] as string, actorOf(span) ? 'user' : 'system') as unknown as Record<string, unknown>
  if (span.status === 'error') {
    activity.status = 'failure'
    activity.severity = 'warning'
  }
  for (const field of ACTIVITY_ATTRIBUTE_FIELDS) {
    const value = a[ACTIVITY_ATTRIBUTE_PREFIX + field]
    if (value !== undefined && value !== null) activity[field] = value
  }
  const attributes: Record<string, string> = {}
  for (const key in a) {
    if (key.startsWith(ACTIVITY_ATTRIBUTE_PREFIX) || key === 'enduser.id') continue
    const value = attributeString(a[key])
    if (value !== undefined) attributes[key] = value
  }
  activity.attributes = attributes
  return activity as unknown as ActivityInputType
}

function httpServerActivity(span: SpanRecord, rawMethod: string): ActivityInputType {
  const a = span.attributes
  const method = /^[A-Za-z]{1,16}$/.test(rawMethod) ? rawMethod.toLowerCase() : 'other'
  const code = num(a['http.response.status_code']) ?? num(a['http.status_code'])
  const route = str(a['http.route'])
  const failed = span.status === 'error' || (code !== undefined && code >= 400)
  const activity = common(span, `api.${method}`, actorOf(span) ? 'user' : 'system')
  activity.category = 'api'
  activity.status = failed ? 'failure' : 'success'
  activity.severity = httpSeverity(code, span.status)
  if (route) {
    activity.entity_type = 'http_route'
    activity.entity_id = route
  }
  const attributes: Record<string, string> = { 'http.request.method': rawMethod }
  if (route) attributes['http.route'] = route
  if (code !== undefined) attributes['http.response.status_code'] = String(code)
  const path = str(a['url.path']) ?? pathOf(str(a['http.target']))
  if (path !== undefined) attributes['url.path'] = path
  activity.attributes = attributes
  return activity
}

/** 5xx is the service's fault: worth a look. 401/403 are who-may-do-what: an auditor's question. */
function httpSeverity(code: number | undefined, status: SpanRecord['status']): 'info' | 'notice' | 'warning' {
  if ((code !== undefined && code >= 500) || (code === undefined && status === 'error')) return 'warning'
  if (code === 401 || code === 403) return 'notice'
  return 'info'
}

function databaseActivity(span: SpanRecord): ActivityInputType | undefined {
  const a = span.attributes
  const statement = str(a['db.query.text']) ?? str(a['db.statement'])
  const given = str(a['db.operation.name']) ?? str(a['db.operation'])
  const table = str(a['db.collection.name']) ?? str(a['db.sql.table'])
  // Parsed only for what the span does not say (the SDK's hook says both; instrumentation-pg neither).
  const parsed = statement && (!given || !table || statement.includes('.')) ? parseStatement(statement) : undefined
  const operation = (given ?? parsed?.operation)?.toLowerCase()
  if (!operation || !MODIFYING.has(operation)) return undefined
  const failed = span.status === 'error'
  const activity = common(span, `db.${operation}`, 'database')
  activity.category = 'data_modification'
  activity.status = failed ? 'failure' : 'success'
  activity.severity = failed ? 'warning' : 'info'
  const entityType = str(a['activity.entity_type']) ?? table ?? parsed?.table
  if (entityType) activity.entity_type = entityType
  const entityId = str(a['activity.entity_id'])
  if (entityId) activity.entity_id = entityId
  if (failed && span.statusMessage) activity.details = { error: span.statusMessage }
  const attributes: Record<string, string> = {}
  const system = str(a['db.system.name']) ?? str(a['db.system'])
  if (system) attributes['db.system'] = system
  const namespace = str(a['db.namespace']) ?? str(a['db.name'])
  if (namespace) attributes['db.namespace'] = namespace
  if (statement) attributes['db.query.text'] = statement.length > LIMITS.attributeValue ? statement.slice(0, LIMITS.attributeValue) : statement
  if (parsed?.schema) attributes['db.schema'] = parsed.schema
  activity.attributes = attributes
  return activity
}

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)`
const STATEMENT = new RegExp(
  `^${LEADING_COMMENTS}` + // leading blanks and comments
    String.raw`(?:WITH\b[\s\S]*?\)\s*)?` + // a CTE prefix, lazily up to the main statement
    String.raw`(INSERT\s+INTO|UPDATE(?:\s+ONLY)?|DELETE\s+FROM(?:\s+ONLY)?|SELECT|MERGE\s+INTO)\s+` +
    `(${IDENT}(?:\\s*\\.\\s*${IDENT})?)`,
  'i',
)

/** The operation and table of a SQL statement, when it names one plainly. */
export function parseStatement(sql: string): { operation: string; table?: string; schema?: string } | undefined {
  const m = STATEMENT.exec(sql)
  if (!m) {
    const first = /^\s*([A-Za-z]+)/.exec(sql)
    return first ? { operation: first[1]!.toLowerCase() } : undefined
  }
  const operation = m[1]!.split(/\s+/)[0]!.toLowerCase()
  const parts = m[2]!.split(/\s*\.\s*(?=(?:[^"]*"[^"]*")*[^"]*$)/).map(unquote)
  const table = parts.at(-1)
  return parts.length > 1 ? { operation, table, schema: parts[0] } : { operation, table }
}

function unquote(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replaceAll('""', '"') : ident.toLowerCase()
}

/** What every mapped activity carries, in one object shape, built field by field: this runs for every write an app makes. */
function common(span: SpanRecord, action: string, source: 'user' | 'system' | 'database'): ActivityInputType {
  const activity: ActivityInputType = {
    source,
    action,
    timestamp: Math.floor(span.startTimeMs),
    duration_ms: Math.max(0, span.durationMs),
    trace_id: span.traceId,
    span_id: span.spanId,
  }
  const service = str(span.resource['service.name'])
  if (service) activity.service = service
  const actor = actorOf(span)
  if (actor) activity.actor_id = actor
  const tenant = str(span.attributes['activity.tenant_id']) ?? str(span.attributes['tenant.id'])
  if (tenant) activity.tenant_id = tenant
  const correlation = str(span.attributes['activity.correlation_id'])
  if (correlation) activity.correlation_id = correlation
  return activity
}

function actorOf(span: SpanRecord): string | undefined {
  return str(span.attributes['activity.actor_id']) ?? str(span.attributes['enduser.id'])
}

function attributeString(value: SpanAttributeValue): string | undefined {
  if (value === undefined || value === null) return undefined
  const text = typeof value === 'string' ? value : typeof value === 'bigint' ? value.toString() : JSON.stringify(value)
  return text.slice(0, LIMITS.attributeValue)
}

function str(value: SpanAttributeValue): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

function num(value: SpanAttributeValue): number | undefined {
  if (typeof value === 'number') return value
  if (typeof value === 'bigint') return Number(value)
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value)
  return undefined
}

function pathOf(target: string | undefined): string | undefined {
  return target?.split('?')[0]
}
