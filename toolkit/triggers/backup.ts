/**
 * `actline triggers backup` and `restore`: each trigger's definition and its
 * function's, as PostgreSQL prints them (pg_get_triggerdef,
 * pg_get_functiondef), its enabled state and comments, in a file and in the
 * database's own actline_trigger_backup table. Restore replays them, then
 * reads the catalog back and fails unless every restored trigger is as it
 * was backed up.
 */
import { createHash } from 'node:crypto'
import type pg from 'pg'
import { readTriggers, triggerKey } from './catalog.ts'
import { inTransaction, parseToolkitFile, quoteIdent } from './sql.ts'

export const BACKUP_TABLE = 'actline_trigger_backup'

export interface BackedUpTrigger {
  schema: string
  table: string
  name: string
  trigger_def: string
  /** The function as regprocedure prints it: schema-qualified name and argument types. */
  function_signature: string
  function_def: string
  enabled: 'O' | 'D' | 'R' | 'A'
  trigger_comment: string | null
  function_comment: string | null
  /** sha256 of the trigger's and its function's definitions: what a plan and a drop compare. */
  checksum: string
}

export interface Backup {
  format: 'actline-trigger-backup'
  version: 1
  taken_at: string
  triggers: BackedUpTrigger[]
}

export function checksum(triggerDef: string, functionDef: string): string {
  return createHash('sha256').update(triggerDef).update('\0').update(functionDef).digest('hex')
}

/** The definitions as they are now, for the triggers the scan finds (optionally only some schemas). */
export async function readDefinitions(client: pg.ClientBase, schemas: readonly string[] = []): Promise<BackedUpTrigger[]> {
  const triggers = await readTriggers(client, schemas)
  if (triggers.length === 0) return []
  const { rows } = await client.query(
    `SELECT t.oid::int AS oid, p.oid::regprocedure::text AS signature, pg_get_functiondef(p.oid) AS function_def,
       obj_description(t.oid, 'pg_trigger') AS trigger_comment, obj_description(p.oid, 'pg_proc') AS function_comment,
       n.nspname AS schema, c.relname AS "table", t.tgname AS name
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_proc p ON p.oid = t.tgfoid
     WHERE NOT t.tgisinternal AND t.tgparentid = 0`,
  )
  const extra = new Map(rows.map((r) => [triggerKey(r), r]))
  return triggers.map((t) => {
    const x = extra.get(triggerKey(t))!
    return {
      schema: t.schema,
      table: t.table,
      name: t.name,
      trigger_def: t.definition,
      function_signature: x.signature,
      function_def: x.function_def,
      enabled: t.enabled,
      trigger_comment: x.trigger_comment,
      function_comment: x.function_comment,
      checksum: checksum(t.definition, x.function_def),
    }
  })
}

/** Takes a backup: returns it, and writes it to the backup table in one transaction (the only table backup writes). */
export async function takeBackup(client: pg.ClientBase, schemas: readonly string[] = []): Promise<Backup> {
  const triggers = await readDefinitions(client, schemas)
  const backup: Backup = { format: 'actline-trigger-backup', version: 1, taken_at: new Date().toISOString(), triggers }
  await inTransaction(client, async () => {
    await client.query(`CREATE TABLE IF NOT EXISTS ${BACKUP_TABLE} (
      taken_at timestamptz NOT NULL, schema_name text NOT NULL, table_name text NOT NULL, trigger_name text NOT NULL,
      trigger_def text NOT NULL, function_signature text NOT NULL, function_def text NOT NULL, enabled text NOT NULL,
      trigger_comment text, function_comment text, checksum text NOT NULL,
      PRIMARY KEY (taken_at, schema_name, table_name, trigger_name))`)
    for (const t of triggers) {
      await client.query(
        `INSERT INTO ${BACKUP_TABLE} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [backup.taken_at, t.schema, t.table, t.name, t.trigger_def, t.function_signature, t.function_def, t.enabled, t.trigger_comment, t.function_comment, t.checksum],
      )
    }
  })
  return backup
}

const quoteLiteral = (s: string | null) => (s === null ? 'NULL' : `'${s.replace(/'/g, "''")}'`)
const ENABLE: Record<BackedUpTrigger['enabled'], string | null> = { O: null, D: 'DISABLE TRIGGER', R: 'ENABLE REPLICA TRIGGER', A: 'ENABLE ALWAYS TRIGGER' }

/** The statements that recreate `t` exactly: its function, then the trigger (dropped first if present), its state, its comments. */
export function restoreStatements(t: BackedUpTrigger): string[] {
  const table = `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`
  const out = [t.function_def.trim().replace(/;?$/, ''), `DROP TRIGGER IF EXISTS ${quoteIdent(t.name)} ON ${table}`, t.trigger_def]
  if (ENABLE[t.enabled]) out.push(`ALTER TABLE ${table} ${ENABLE[t.enabled]} ${quoteIdent(t.name)}`)
  if (t.trigger_comment !== null) out.push(`COMMENT ON TRIGGER ${quoteIdent(t.name)} ON ${table} IS ${quoteLiteral(t.trigger_comment)}`)
  if (t.function_comment !== null) out.push(`COMMENT ON FUNCTION ${t.function_signature} IS ${quoteLiteral(t.function_comment)}`)
  return out
}

/** Which backed-up triggers `--trigger` names select: `name`, `table.name` or `schema.table.name`; all without names. */
export function select(backup: Backup, names: readonly string[]): BackedUpTrigger[] {
  if (names.length === 0) return backup.triggers
  return names.map((n) => {
    const hits = backup.triggers.filter((t) => [t.name, `${t.table}.${t.name}`, triggerKey(t)].includes(n))
    if (hits.length === 0) throw new Error(`no trigger '${n}' in the backup`)
    if (hits.length > 1) throw new Error(`'${n}' names ${hits.length} triggers in the backup: qualify it as table.name or schema.table.name`)
    return hits[0]!
  })
}

/**
 * Restores `triggers` in one transaction, then compares the catalog with the
 * backup; resolves with the triggers that differ (none after a good restore).
 */
export async function restore(client: pg.ClientBase, triggers: readonly BackedUpTrigger[]): Promise<string[]> {
  await inTransaction(client, async () => {
    for (const t of triggers) for (const sql of restoreStatements(t)) await client.query(sql)
  })
  const now = new Map((await readDefinitions(client)).map((t) => [triggerKey(t), t]))
  return triggers.flatMap((t) => {
    const n = now.get(triggerKey(t))
    const same = n && n.trigger_def === t.trigger_def && n.function_def === t.function_def && n.enabled === t.enabled && n.trigger_comment === t.trigger_comment && n.function_comment === t.function_comment
    return same ? [] : [triggerKey(t)]
  })
}

export function parseBackup(text: string, file: string): Backup {
  const b = parseToolkitFile<Backup>(text, file, 'actline-trigger-backup', 'backup')
  if (!Array.isArray(b.triggers)) throw new Error(`${file} is not an actline trigger backup: it has no triggers list`)
  for (const t of b.triggers) {
    if (checksum(t.trigger_def, t.function_def) !== t.checksum) throw new Error(`${file}: the definition of ${triggerKey(t)} does not match its checksum: the file was edited or damaged`)
  }
  return b
}
