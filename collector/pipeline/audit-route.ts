/**
 * Which activities the audit trail takes: every activity goes to ClickHouse
 * (analytics wants everything), the audit-relevant ones also go to
 * PostgreSQL, the append-only trail, which should not pay for debug noise.
 * Applied by the PostgreSQL exporter's reader of the write-ahead log.
 */
import { z } from 'zod'
import { CATEGORIES, SEVERITIES, SOURCES, severityRank, type Activity } from '../../schemas/activity.ts'

/**
 * An activity is audit-relevant when ANY clause matches. The default keeps
 * what an auditor asks about: everything a user did, anything notable or
 * worse, and the security-sensitive categories whatever their source.
 */
export const AuditRouteConfig = z
  .object({
    /** Send every activity to the audit trail. @default false */
    all: z.boolean().default(false),
    /**
     * Anything a person did, and every data change an app made (the rows
     * audit triggers used to write). @default ['user', 'database']
     */
    sources: z.array(z.enum(SOURCES)).default(['user', 'database']),
    /** Severity at or above which an activity is audited; 'none' disables the clause. @default 'notice' */
    min_severity: z.enum([...SEVERITIES, 'none']).default('notice'),
    /** @default ['authentication', 'authorization', 'security', 'compliance'] */
    categories: z.array(z.enum(CATEGORIES)).default(['authentication', 'authorization', 'security', 'compliance']),
    /** Action prefixes, e.g. 'billing.' or exact actions. @default [] */
    action_prefixes: z.array(z.string().min(1)).default([]),
    /**
     * Which path's activity is the audit row of a change to a table that
     * change-data capture also captures: `capture` (the default) or `sdk`, by
     * `schema.table`, table name, or `*`. The other path's activity stays in
     * analytics as context. @default {} (capture owns every captured table)
     */
    row_change_owner: z.record(z.string().regex(/^(\*|[^.\s]+(\.[^.\s]+)?)$/, 'must be schema.table, table or *'), z.enum(['capture', 'sdk'])).default({}),
  })
  .strict()

export type AuditRouteConfig = z.output<typeof AuditRouteConfig>

/**
 * `captured`: the tables a receiver records row changes of (`schema.table`
 * or `schema.*`), from the registry. A row change seen by both paths is
 * audited once, from the path that owns its table.
 */
export function auditPredicate(config: AuditRouteConfig, captured: readonly string[] = []): (a: Activity) => boolean {
  const secondCopy = duplicateRowChange(config.row_change_owner, captured)
  if (config.all) return (a) => !secondCopy(a)
  const sources = new Set<string>(config.sources)
  const categories = new Set<string>(config.categories)
  const minRank = config.min_severity === 'none' ? Infinity : severityRank(config.min_severity)
  const prefixes = config.action_prefixes
  return (a) =>
    (sources.has(a.source) ||
      severityRank(a.severity) >= minRank ||
      categories.has(a.category) ||
      prefixes.some((p) => a.action.startsWith(p))) &&
    !secondCopy(a)
}

const ROW_CHANGE = /^db\.(insert|update|delete|truncate)$/

/**
 * Whether `a` is the path's copy of a row change that the other path owns.
 * A captured change carries `cdc.slot`; the SDK's names its schema only when
 * the statement did, and an unqualified table is taken as `public` (the
 * default search_path) for `schema.*`: an SDK write is made context only
 * when its table is surely captured, never on a guess, so the worst a
 * mismatch does is keep both copies.
 */
function duplicateRowChange(owners: Record<string, 'capture' | 'sdk'>, captured: readonly string[]): (a: Activity) => boolean {
  if (captured.length === 0) return () => false
  const tables = new Set(captured.filter((t) => !t.endsWith('.*')))
  const names = new Set([...tables].map((t) => t.slice(t.indexOf('.') + 1)))
  const schemas = new Set(captured.filter((t) => t.endsWith('.*')).map((t) => t.slice(0, -2)))
  const ownerOf = (schema: string | undefined, table: string) => (schema && owners[`${schema}.${table}`]) || owners[table] || owners['*'] || 'capture'
  return (a) => {
    if (a.source !== 'database' || !a.entity_type || !ROW_CHANGE.test(a.action)) return false
    const schema = a.attributes['db.schema']
    if (a.attributes['cdc.slot'] !== undefined) return ownerOf(schema, a.entity_type) === 'sdk'
    const isCaptured = schema ? tables.has(`${schema}.${a.entity_type}`) || schemas.has(schema) : names.has(a.entity_type) || schemas.has('public')
    return isCaptured && ownerOf(schema ?? 'public', a.entity_type) === 'capture'
  }
}
