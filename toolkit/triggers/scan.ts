/** `actline triggers scan`: every trigger of the user's tables, what it does, and whether it can go. */
import type pg from 'pg'
import { readFunctions, readTriggers, type CatalogFunction, type CatalogTrigger } from './catalog.ts'
import { classifyFunction, REPLACEMENT, type Kind } from './classify.ts'

/** Kinds proposed for removal without being asked: what the pipeline records instead. */
export const ALWAYS_REMOVABLE: readonly Kind[] = ['audit', 'activity']
/** Kinds removable on request (--include): their replacement is not the audit trail. */
export const OPTIONALLY_REMOVABLE: readonly Kind[] = ['notify', 'timestamp']

export interface ScannedTrigger {
  schema: string
  table: string
  name: string
  function: string
  timing: CatalogTrigger['timing']
  events: CatalogTrigger['events']
  level: CatalogTrigger['level']
  when: string | null
  enabled: boolean
  constraint: boolean
  kind: Kind
  remove: boolean
  reason: string
  replacement: string
}

export interface ScanResult {
  triggers: ScannedTrigger[]
  summary: { triggers: number; tables: number; removable: number; by_kind: Record<Kind, number> }
}

export async function scan(client: pg.ClientBase, options: { schemas?: readonly string[]; include?: readonly Kind[] } = {}): Promise<ScanResult> {
  const triggers = await readTriggers(client, options.schemas)
  const functions = await readFunctions(client)
  const byName = new Map<string, CatalogFunction>()
  for (const f of functions.values()) {
    byName.set(`${f.schema}.${f.name}`, f)
    if (!byName.has(f.name)) byName.set(f.name, f)
  }
  const removable = new Set<Kind>([...ALWAYS_REMOVABLE, ...(options.include ?? []).filter((k) => OPTIONALLY_REMOVABLE.includes(k))])
  const out = triggers.map((t): ScannedTrigger => {
    const fn = functions.get(t.functionOid)
    const c = fn ? classifyFunction(fn, byName) : { kind: 'business' as const, reason: 'its function is not in a user schema: kept' }
    return {
      schema: t.schema,
      table: t.table,
      name: t.name,
      function: t.function,
      timing: t.timing,
      events: t.events,
      level: t.level,
      when: t.when,
      enabled: t.enabled !== 'D',
      constraint: t.constraint,
      kind: c.kind,
      remove: removable.has(c.kind),
      reason: c.reason,
      replacement: REPLACEMENT[c.kind],
    }
  })
  const by_kind = { audit: 0, activity: 0, notify: 0, timestamp: 0, business: 0 } as Record<Kind, number>
  for (const t of out) by_kind[t.kind]++
  return {
    triggers: out,
    summary: { triggers: out.length, tables: new Set(out.map((t) => `${t.schema}.${t.table}`)).size, removable: out.filter((t) => t.remove).length, by_kind },
  }
}

/** The human report: a table of triggers per table, then the totals. */
export function formatScan(result: ScanResult): string {
  const lines: string[] = []
  const tables = new Map<string, ScannedTrigger[]>()
  for (const t of result.triggers) tables.set(`${t.schema}.${t.table}`, [...(tables.get(`${t.schema}.${t.table}`) ?? []), t])
  for (const [table, ts] of tables) {
    lines.push(`${table}`)
    const rows = ts.map((t) => [t.remove ? 'remove' : 'keep', t.kind, t.name, `${t.timing} ${t.events.join('|')} ${t.level}${t.enabled ? '' : ' (disabled)'}`, t.function, t.reason])
    const widths = [6, 9, 0, 0, 0].map((min, i) => Math.max(min, ...rows.map((r) => r[i]!.length)))
    for (const r of rows) lines.push(`  ${r.slice(0, 5).map((c, i) => c.padEnd(widths[i]!)).join('  ')}  ${r[5]}`)
    lines.push('')
  }
  const s = result.summary
  lines.push(
    `${s.triggers} triggers on ${s.tables} tables: ${Object.entries(s.by_kind).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}; ${s.removable} proposed for removal`,
  )
  return lines.join('\n')
}
