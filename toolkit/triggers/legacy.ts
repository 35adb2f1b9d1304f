/**
 * The legacy audit table the triggers write: which of its columns hold the
 * table name, the operation, the time, the row id, the old and new values,
 * the actor. Read by `compare` (counts) and `backfill` (copies); both find
 * the usual column names themselves and take the user's where they differ.
 */
import type pg from 'pg'

export interface LegacyColumns {
  table: string
  operation: string
  time: string
  id?: string
  old?: string
  new?: string
  actor?: string
  tenant?: string
}

export type LegacyColumn = keyof LegacyColumns

/** Column names the common audit-table shapes use (a wide audit_logs, audit.logged_actions, papertrail's versions...), tried in order. */
const CANDIDATES: Record<LegacyColumn, string[]> = {
  table: ['table_name', 'tablename', 'table', 'relname', 'tbl', 'entity_type', 'object_type', 'item_type'],
  operation: ['operation', 'op', 'tg_op', 'action', 'event', 'action_type'],
  time: ['changed_at', 'created_at', 'occurred_at', 'logged_at', 'timestamp', 'ts', 'action_tstamp_tx', 'at'],
  id: ['row_id', 'record_id', 'entity_id', 'object_id', 'item_id', 'pk', 'row_pk'],
  old: ['old_data', 'old_values', 'old_row', 'old_record', 'row_data', 'before', 'object'],
  new: ['new_data', 'new_values', 'new_row', 'new_record', 'changed_fields', 'after', 'object_changes'],
  actor: ['changed_by', 'actor_id', 'actor', 'user_id', 'app_user', 'whodunnit', 'session_user_name', 'db_user', 'username'],
  tenant: ['tenant_id', 'organization_id', 'org_id', 'account_id'],
}

const REQUIRED: readonly LegacyColumn[] = ['table', 'operation', 'time']

export { quoteQualified as qualified } from '../../lib/sql.ts'

/**
 * The legacy table's columns: those given, the rest found by their usual
 * names (`wanted` lists the optional ones to look for); a one-line error
 * naming what is missing.
 */
export async function legacyColumns(client: pg.ClientBase, table: string, given: Partial<LegacyColumns>, wanted: readonly LegacyColumn[]): Promise<LegacyColumns> {
  const [schema, name] = table.includes('.') ? table.split('.', 2) : [null, table]
  const { rows } = await client.query(
    `SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND ($2::text IS NULL OR table_schema = $2) ORDER BY ordinal_position`,
    [name, schema],
  )
  if (rows.length === 0) throw new Error(`no table ${table} (or no privilege to see its columns): pass --legacy-table schema.table`)
  const have = new Set(rows.map((r) => r.column_name as string))
  const out: Partial<LegacyColumns> = {}
  for (const k of [...REQUIRED, ...wanted.filter((w) => !REQUIRED.includes(w))]) {
    const g = given[k]
    if (g !== undefined && !have.has(g)) throw new Error(`${table} has no column ${g} (it has ${[...have].join(', ')})`)
    const c = g ?? CANDIDATES[k].find((c) => have.has(c) && !Object.values(out).includes(c))
    if (c) out[k] = c
    else if (REQUIRED.includes(k)) throw new Error(`cannot tell which column of ${table} holds the ${k === 'time' ? 'time' : `${k} name`}: pass --${k}-column (it has ${[...have].join(', ')})`)
  }
  return out as LegacyColumns
}

/** INSERT, I, insert, create... -> insert; the same for update and delete; others as written. */
export function normalizeOperation(op: string): string {
  const o = op.trim().toLowerCase()
  if (['insert', 'i', 'c', 'create', 'created', 'inserted'].includes(o)) return 'insert'
  if (['update', 'u', 'updated', 'modify'].includes(o)) return 'update'
  if (['delete', 'd', 'deleted', 'remove', 'destroy'].includes(o)) return 'delete'
  return o
}

/** The table's name as the SDK reports it in entity_type: without its schema. */
export const bareTable = (name: string) => name.split('.').at(-1)!
