/**
 * The query-string vocabulary every /api/v1 route shares: times, lists and
 * the activity filters, as zod schemas. Routes validate with these and the
 * OpenAPI document is generated from them, so the two never disagree.
 */
import { z } from 'zod'
import { CATEGORIES, SEVERITIES, SOURCES, STATUSES } from '../schemas/activity.ts'
import { ActlineError } from '../schemas/errors.ts'
import { stringProblem } from '../schemas/storable.ts'

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const

/**
 * The instants both stores can hold: ClickHouse's DateTime64 covers
 * 1900-01-01 to 2299-12-31. A time outside it is the caller's mistake, said
 * as such, not a store error.
 */
export const EARLIEST_MS = Date.UTC(1900, 0, 1)
export const LATEST_MS = Date.UTC(2300, 0, 1) - 1

/** Is `ms` an instant both stores hold? */
export function storableTime(ms: number): boolean {
  return Number.isFinite(ms) && ms >= EARLIEST_MS && ms <= LATEST_MS
}

/**
 * An instant: ISO 8601, epoch milliseconds, or Grafana's relative `now`,
 * `now-7d` (units s, m, h, d, w). Parsed to epoch ms, within 1900-2299.
 */
export const Instant = z
  .string()
  .trim()
  .transform((text, ctx) => {
    const relative = /^now(?:-(\d+)([smhdw]))?$/.exec(text)
    const ms = relative
      ? Date.now() - (relative[1] ? Number(relative[1]) * UNIT_MS[relative[2] as keyof typeof UNIT_MS] : 0)
      : /^\d{10,16}$/.test(text) ? Number(text) : Date.parse(text)
    if (Number.isNaN(ms)) {
      ctx.addIssue({ code: 'custom', message: `'${shorten(text)}' is not a time: use ISO 8601, epoch milliseconds or now-<n><s|m|h|d|w>` })
      return z.NEVER
    }
    if (!storableTime(ms)) {
      ctx.addIssue({ code: 'custom', message: `'${shorten(text)}' is outside the times the stores hold (1900-01-01 to 2299-12-31)` })
      return z.NEVER
    }
    return ms
  })
  .meta({ description: 'ISO 8601, epoch milliseconds, or now / now-<n><s|m|h|d|w>', example: 'now-7d' })

/** `a,b,c` (or the key repeated) as a list of one or more values. */
function list<T extends z.ZodType<string, string>>(item: T, description: string) {
  return z
    .preprocess((v) => (Array.isArray(v) ? v.join(',') : v), z.string())
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(item).min(1))
    .meta({ description: `${description}; several values comma-separated` })
}

const text = (description: string) => z.string().min(1).max(512).meta({ description })

/** Filters on rollup dimensions: usable everywhere, trends included. */
export const DimensionFilters = z.object({
  source: list(z.enum(SOURCES), 'source').optional(),
  action: list(z.string().max(256), 'action').optional(),
  category: list(z.enum(CATEGORIES), 'category').optional(),
  severity: list(z.enum(SEVERITIES), 'severity').optional(),
  status: list(z.enum(STATUSES), 'status').optional(),
  service: list(z.string().max(256), 'service name').optional(),
  tenant: list(z.string().max(256), 'tenant id').optional(),
})

/** Filters on per-row fields, which the rollups do not keep. */
export const RowFilters = z.object({
  actor: text('actor id').optional(),
  entity_type: text('entity type').optional(),
  entity_id: text('entity id').optional(),
  trace_id: z.string().regex(/^[0-9a-f]{32}$/, 'trace_id is 32 lowercase hex digits').optional(),
  q: text('full-text search over action and details (case-insensitive substring)').optional(),
})

export const TimeRange = z.object({
  from: Instant.optional(),
  to: Instant.optional(),
})

export type DimensionFilters = z.output<typeof DimensionFilters>
export type RowFilters = z.output<typeof RowFilters>
export type Filters = DimensionFilters & RowFilters & { from?: number; to?: number }

export const DIMENSION_COLUMN: Record<keyof DimensionFilters, string> = {
  source: 'source',
  action: 'action',
  category: 'category',
  severity: 'severity',
  status: 'status',
  service: 'service',
  tenant: 'tenant_id',
}

export const ROW_COLUMN = { actor: 'actor_id', entity_type: 'entity_type', entity_id: 'entity_id', trace_id: 'trace_id' } as const

function shorten(text: string): string {
  return text.length > 64 ? `${text.slice(0, 61)}...` : text
}

/**
 * Validate a query string; a failure is a 400 naming every bad parameter
 * (`details.param` is the first, `details.issues` all of them). A value no
 * store can take (NUL, a lone surrogate) is refused here, before any SQL.
 */
export function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  const unstorable = Object.entries((query ?? {}) as Record<string, unknown>).flatMap(([parameter, value]) => {
    const message = [value].flat().map((v) => (typeof v === 'string' ? stringProblem(v) : undefined)).find(Boolean)
    return message ? [{ parameter: parameter.toWellFormed(), message: `value ${message}` }] : []
  })
  if (unstorable.length > 0) throw invalid(unstorable)
  const result = schema.safeParse(query ?? {})
  if (result.success) return result.data
  throw invalid(
    result.error.issues.flatMap((i) =>
      i.code === 'unrecognized_keys'
        ? i.keys.map((key) => ({ parameter: key.toWellFormed(), message: 'unknown parameter' }))
        : [{ parameter: String(i.path[0] ?? '(query)'), message: i.message }],
    ),
  )
}

function invalid(issues: { parameter: string; message: string }[]): ActlineError {
  return new ActlineError('ACT_ERR_VALIDATION', `invalid query string: ${issues.map((i) => `${i.parameter}: ${i.message}`).join('; ')}`, {
    param: issues[0]!.parameter,
    issues,
  })
}

/** The range a route works on: `to` defaults to now, `from` to `to` minus the route's default span. */
export function resolveRange(range: { from?: number; to?: number }, defaultSpanMs: number, maxSpanMs = Infinity): { from: number; to: number } {
  const to = range.to ?? Date.now()
  // A default span reaching before what the stores hold starts where they do.
  const from = range.from ?? Math.max(EARLIEST_MS, to - defaultSpanMs)
  if (from >= to) {
    throw new ActlineError('ACT_ERR_VALIDATION', '`from` must be before `to`', { param: 'from', from: new Date(from).toISOString(), to: new Date(to).toISOString() })
  }
  if (to - from > maxSpanMs) {
    throw new ActlineError('ACT_ERR_VALIDATION', `the range is longer than this query allows (${Math.round(maxSpanMs / 86_400_000)} days)`, { param: 'from' })
  }
  return { from, to }
}
