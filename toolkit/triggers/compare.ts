/**
 * `actline triggers compare`: the dual run. The legacy audit rows the
 * triggers wrote, counted per table and operation, against the `db.*`
 * activities actline stored in its audit_log for the same window; the row
 * ids found on one side only where both sides carry them.
 */
import type pg from 'pg'
import { quoteIdent } from './sql.ts'
import { bareTable, legacyColumns, normalizeOperation, qualified, type LegacyColumns } from './legacy.ts'

export interface TableParity {
  table: string
  operation: string
  legacy: number
  actline: number
  /** actline / legacy, as a percentage; 100 when both are 0. */
  parity: number
  /** Legacy rows that repeat a change already counted (same row id and time: two triggers recording one write). */
  legacy_duplicates: number
  /** Ids of rows the legacy table has and actline does not (where both carry ids), the first 20. */
  only_legacy: string[]
  only_actline: string[]
}

export interface CompareResult {
  since: string
  until: string
  columns: LegacyColumns
  tables: TableParity[]
  below_threshold: string[]
  /** Tables whose every operation is at the threshold: what `plan --parity` takes. */
  at_parity: string[]
}

const LIMIT_IDS = 20

export async function compare(
  legacy: pg.ClientBase,
  actline: pg.ClientBase,
  o: { legacyTable: string; since: Date; until: Date; columns?: Partial<LegacyColumns>; threshold: number },
): Promise<CompareResult> {
  const cols = await legacyColumns(legacy, o.legacyTable, o.columns ?? {}, ['id'])
  const idExpr = cols.id ? `${quoteIdent(cols.id)}::text` : 'NULL::text'
  const legacyRows = (
    await legacy.query(
      `SELECT ${quoteIdent(cols.table)}::text AS tbl, ${quoteIdent(cols.operation)}::text AS op, ${idExpr} AS id, ${quoteIdent(cols.time)}::text AS at
       FROM ${qualified(o.legacyTable)} WHERE ${quoteIdent(cols.time)} >= $1 AND ${quoteIdent(cols.time)} < $2`,
      [o.since, o.until],
    )
  ).rows as { tbl: string; op: string; id: string | null; at: string }[]
  const actlineRows = (
    await actline.query(
      `SELECT entity_type AS tbl, substring(action from 4) AS op, entity_id AS id FROM audit_log
       WHERE action IN ('db.insert', 'db.update', 'db.delete') AND occurred_at >= $1 AND occurred_at < $2`,
      [o.since, o.until],
    )
  ).rows as { tbl: string | null; op: string; id: string | null }[]
  const groups = new Map<string, { legacy: (string | null)[]; actline: (string | null)[]; seen: Set<string>; duplicates: number }>()
  const group = (tbl: string, op: string) => {
    const k = `${bareTable(tbl)}|${normalizeOperation(op)}`
    let g = groups.get(k)
    if (!g) groups.set(k, (g = { legacy: [], actline: [], seen: new Set(), duplicates: 0 }))
    return g
  }
  for (const r of legacyRows) {
    const g = group(r.tbl, r.op)
    // Two triggers writing the same change (a redundant one, phase 1's) leave two rows of one row id at one
    // transaction time: one change, as the app made it once.
    if (r.id !== null) {
      const change = `${r.id}|${r.at}`
      if (g.seen.has(change)) {
        g.duplicates++
        continue
      }
      g.seen.add(change)
    }
    g.legacy.push(r.id)
  }
  for (const r of actlineRows) if (r.tbl) group(r.tbl, r.op).actline.push(r.id)
  const tables = [...groups].map(([k, g]): TableParity => {
    const [table, operation] = k.split('|') as [string, string]
    const bothHaveIds = g.legacy.some((id) => id !== null) && g.actline.some((id) => id !== null)
    const diff = (a: (string | null)[], b: (string | null)[]) => {
      const other = new Set(b)
      return [...new Set(a.filter((id): id is string => id !== null && !other.has(id)))].slice(0, LIMIT_IDS)
    }
    return {
      table,
      operation,
      legacy: g.legacy.length,
      actline: g.actline.length,
      parity: g.legacy.length === 0 ? 100 : Math.round((g.actline.length / g.legacy.length) * 10_000) / 100,
      only_legacy: bothHaveIds ? diff(g.legacy, g.actline) : [],
      only_actline: bothHaveIds ? diff(g.actline, g.legacy) : [],
      legacy_duplicates: g.duplicates,
    }
  })
  tables.sort((a, b) => a.table.localeCompare(b.table) || a.operation.localeCompare(b.operation))
  const below = [...new Set(tables.filter((t) => t.parity < o.threshold || t.only_legacy.length > 0).map((t) => t.table))]
  return {
    since: o.since.toISOString(),
    until: o.until.toISOString(),
    columns: cols,
    tables,
    below_threshold: below,
    at_parity: [...new Set(tables.map((t) => t.table))].filter((t) => !below.includes(t)),
  }
}

export function formatCompare(r: CompareResult, threshold: number): string {
  const lines = [`legacy ${r.columns.table}/${r.columns.operation}/${r.columns.time}${r.columns.id ? `/${r.columns.id}` : ''} vs actline audit_log, ${r.since} .. ${r.until}`, '']
  lines.push(`${'table'.padEnd(20)} ${'op'.padEnd(7)} ${'legacy'.padStart(8)} ${'actline'.padStart(8)} ${'parity'.padStart(8)}`)
  for (const t of r.tables) {
    lines.push(`${t.table.padEnd(20)} ${t.operation.padEnd(7)} ${String(t.legacy).padStart(8)} ${String(t.actline).padStart(8)} ${`${t.parity}%`.padStart(8)}${t.parity < threshold ? '  below' : ''}`)
    if (t.only_legacy.length) lines.push(`  only in the legacy table: ${t.only_legacy.join(', ')}`)
    if (t.only_actline.length) lines.push(`  only in actline: ${t.only_actline.join(', ')}`)
  }
  const duplicates = r.tables.reduce((n, t) => n + t.legacy_duplicates, 0)
  if (duplicates) lines.push('', `${duplicates} legacy rows repeat a change another trigger already recorded (same table, operation, row id and time): counted once`)
  lines.push('', r.below_threshold.length ? `below ${threshold}%: ${r.below_threshold.join(', ')}` : `every table at ${threshold}% or more`)
  if (r.at_parity.length) lines.push(`at parity (for plan --parity): ${r.at_parity.join(',')}`)
  return lines.join('\n')
}
