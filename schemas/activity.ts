/**
 * The activity event contract: what applications send, and the normalized
 * record every exporter receives. One zod schema is the single source of
 * truth; the JSON Schema in activity.schema.json is generated from it.
 */
import { z } from 'zod'
import { inspectValue, printable, stringProblem } from './storable.ts'
import { uuidv7 } from './uuidv7.ts'
import { ACTIVITY_ROW, INPUT_FIELDS } from './activity-row.ts'

export { uuidv7 }

export { CATEGORIES, SEVERITIES, SOURCES, STATUSES } from './vocabulary.ts'
import { CATEGORIES, SEVERITIES, SOURCES, STATUSES } from './vocabulary.ts'
import { LIMITS, type ActivityInputType, type Severity, type Source, type Status, type Category } from './activity-input.ts'

export type { Source, Severity, Status, Category } from './activity-input.ts'
export { LIMITS }

/** Keys every activity may carry; anything else is an unknown field. */
export const ACTIVITY_FIELDS = INPUT_FIELDS

const shortText = z.string().max(LIMITS.shortText)

// Numbers and booleans are stringified by parseActivity: a zod transform per
// value costs more than the rest of the schema on attribute-heavy events.
const attributeValue = z.union([z.string().max(LIMITS.attributeValue), z.number(), z.boolean()])

const timestamp = z
  .union([z.iso.datetime({ offset: true }), z.number().int()])
  .transform((v) => (typeof v === 'number' ? v : Date.parse(v)))
  .refine((ms) => ms >= LIMITS.earliest, { message: 'timestamp is before 2000-01-01 (seconds sent as milliseconds?)' })
  .refine((ms) => ms <= Date.now() + LIMITS.futureSkewMs, { message: 'timestamp is more than 24h in the future' })

/** What a client may send. Only `action` and `source` are required. */
export const ActivityInput = z.object({
  id: z.uuid().optional().describe('Idempotency key; UUIDv7 preferred. Assigned by the collector when missing.'),
  timestamp: timestamp.optional().describe('When it happened: RFC 3339 with offset, or epoch milliseconds. Defaults to the time inside a UUIDv7 id, else receipt time.'),
  source: z.enum(SOURCES),
  action: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9_:\-/]+(\.[A-Za-z0-9_:\-/]+)*$/, 'action must be dot-separated words, e.g. user.login')
    .describe('What happened, dot-separated: user.login, db.insert, invoice.paid'),
  category: z.enum(CATEGORIES).default('other'),
  severity: z.enum(SEVERITIES).default('info'),
  status: z.enum(STATUSES).default('success'),
  entity_type: shortText.optional(),
  entity_id: shortText.optional(),
  actor_id: shortText.optional(),
  tenant_id: shortText.optional(),
  service: shortText.optional(),
  trace_id: z.string().regex(/^[0-9a-f]{32}$/, 'trace_id must be 32 lowercase hex characters').optional(),
  span_id: z.string().regex(/^[0-9a-f]{16}$/, 'span_id must be 16 lowercase hex characters').optional(),
  correlation_id: shortText.optional(),
  duration_ms: z.number().nonnegative().max(7 * 24 * 3600 * 1000).optional(),
  details: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
  ip: z.union([z.ipv4(), z.ipv6()]).optional(),
  user_agent: z.string().max(LIMITS.userAgent).optional(),
  attributes: z
    .record(z.string().min(1).max(LIMITS.shortText), attributeValue)
    .refine((a) => Object.keys(a).length <= LIMITS.attributes, { message: `at most ${LIMITS.attributes} attributes` })
    .optional(),
})

export type { ActivityInputType }

/** Checked when compiling: the zod schema takes exactly the plain input type the SDK builds (activity-input.ts). */
type SchemaInput = z.input<typeof ActivityInput>
export const INPUT_MATCHES_SCHEMA: [SchemaInput] extends [ActivityInputType] ? ([ActivityInputType] extends [SchemaInput] ? true : never) : never = true

/**
 * The normalized activity every processor and exporter sees: the input with
 * its id, time and closed fields settled and attributes as strings.
 */
export interface Activity extends Omit<ActivityInputType, 'id' | 'timestamp' | 'category' | 'severity' | 'status' | 'attributes'> {
  id: string
  /** Epoch milliseconds. */
  timestamp: number
  /** Epoch milliseconds at which the collector accepted it. */
  received_at: number
  category: Category
  severity: Severity
  status: Status
  attributes: Record<string, string>
}

/** Checked when compiling: the stored row (activity-row.ts) has exactly the keys of Activity. */
type RowNames = (typeof ACTIVITY_ROW)[number]['name']
export const ROW_MATCHES_ACTIVITY: [keyof Activity] extends [RowNames] ? ([RowNames] extends [keyof Activity] ? true : never) : never = true

export interface FieldIssue {
  /** Dotted path of the offending field; '' for the item itself. */
  path: string
  message: string
}

export type ParseResult = { ok: true; activity: Activity } | { ok: false; issues: FieldIssue[] }

const known = new Set<string>(ACTIVITY_FIELDS)

/**
 * Validate and normalize one item. Unknown top-level fields are kept, not
 * rejected: they move into `attributes` (values stringified, explicit
 * attributes win on a clash) under the same limits as attributes, so a
 * client on a newer contract never loses data and no field escapes a limit.
 * Any name is kept as sent, `__proto__` and `constructor` included.
 */
export function parseActivity(input: unknown, receivedAt: number = Date.now()): ParseResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, issues: [{ path: '', message: `expected an object, got ${describe(input)}` }] }
  }
  // First, before anything recurses into the item or a store sees it: one
  // bounded walk per field finds what no store can hold (schemas/storable.ts)
  // and sizes it, details included.
  const fields = input as Record<string, unknown>
  let size = 2
  let detailsSize = 0
  for (const key of Object.keys(fields)) {
    const keyProblem = stringProblem(key)
    if (keyProblem) return fail(printable(key), `field name ${keyProblem}`)
    const inspected = inspectValue(fields[key], LIMITS.depth - 1)
    if ('message' in inspected) return fail(inspected.path ? `${printable(key)}.${inspected.path}` : printable(key), `value ${inspected.message}`)
    size += key.length + 4 + inspected.size
    if (key === 'details') detailsSize = inspected.size
  }
  if (size > LIMITS.activity) return fail('', `activity is ${size} characters of JSON, at most ${LIMITS.activity}`)
  const parsed = ActivityInput.safeParse(input)
  if (!parsed.success) {
    return {
      ok: false,
      issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    }
  }
  // zod's output is a fresh object: completed in place into an Activity
  // rather than copied, as this runs for every event. Attributes and
  // details are taken from the input, not from zod's copy: a key such as
  // `__proto__` is an own property of what JSON.parse built, and assigning
  // it to a fresh object would change that object's prototype instead.
  const v = parsed.data as Omit<typeof parsed.data, 'attributes'> & Partial<Activity>
  const attributes: Record<string, string> = {}
  let count = 0
  const sent = fields.attributes as Record<string, string | number | boolean> | undefined
  if (sent) {
    for (const key of Object.keys(sent)) {
      setOwn(attributes, key, String(sent[key]))
      count++
    }
  }
  for (const key of Object.keys(fields)) {
    if (known.has(key) || Object.hasOwn(attributes, key)) continue
    if (key.length === 0 || key.length > LIMITS.shortText) {
      return fail(printable(key), `unknown field names become attribute keys, which are 1-${LIMITS.shortText} characters (got ${key.length})`)
    }
    const value = stringify(fields[key])
    if (value.length > LIMITS.attributeValue) {
      return fail(printable(key), `unknown field '${printable(key)}' is kept as an attribute, and attribute values are at most ${LIMITS.attributeValue} characters (got ${value.length})`)
    }
    setOwn(attributes, key, value)
    count++
  }
  if (count > LIMITS.attributes) return fail('attributes', `at most ${LIMITS.attributes} attributes, unknown fields included`)
  if (fields.details !== undefined) {
    v.details = fields.details as Activity['details']
    // A string counts its characters; an object its JSON text (as sized by the walk above).
    const length = typeof v.details === 'string' ? v.details.length : detailsSize
    if (length > LIMITS.details) return fail('details', `details is ${length} characters, at most ${LIMITS.details}`)
  }
  // One spelling per id: both stores read UUIDs case-insensitively, so
  // `ABC...` and `abc...` are one row there and must be one id here (dedup).
  if (v.id) v.id = v.id.toLowerCase()
  v.timestamp ??= (v.id ? uuidv7Time(v.id) : undefined) ?? receivedAt
  v.id ??= uuidv7()
  v.received_at = receivedAt
  v.attributes = attributes
  return { ok: true, activity: v as Activity }
}

function fail(path: string, message: string): ParseResult {
  return { ok: false, issues: [{ path, message }] }
}

/** `target[key] = value` as an own property, whatever the key (`__proto__` would otherwise set the prototype). */
function setOwn(target: Record<string, string>, key: string, value: string): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
  else target[key] = value
}

/**
 * The millisecond clock inside a UUIDv7, if it is one and the time is sane.
 * An event re-sent without a timestamp must get the same timestamp again:
 * the audit trail's key is (id, occurred_at), so a fresh receipt time would
 * turn a retry into a second row.
 */
export function uuidv7Time(id: string): number | undefined {
  if (id[14] !== '7') return undefined
  const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
  return ms >= LIMITS.earliest && ms <= Date.now() + LIMITS.futureSkewMs ? ms : undefined
}

function stringify(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v) ?? String(v)
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v
}

/** Index of a severity, for "at least notice" style comparisons. */
export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s)
}
