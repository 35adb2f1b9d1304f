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
  })
  .strict()

export type AuditRouteConfig = z.output<typeof AuditRouteConfig>

export function auditPredicate(config: AuditRouteConfig): (a: Activity) => boolean {
  if (config.all) return () => true
  const sources = new Set<string>(config.sources)
  const categories = new Set<string>(config.categories)
  const minRank = config.min_severity === 'none' ? Infinity : severityRank(config.min_severity)
  const prefixes = config.action_prefixes
  return (a) =>
    sources.has(a.source) ||
    severityRank(a.severity) >= minRank ||
    categories.has(a.category) ||
    prefixes.some((p) => a.action.startsWith(p))
}
