/**
 * `actline triggers backup` and `restore`: each trigger's definition and its
 * function's, as PostgreSQL prints them (pg_get_triggerdef,
 * pg_get_functiondef), its enabled state and comments, in a file and in the
 * database's own actline_trigger_backup table. Restore replays them, then
 * reads the catalog back and fails unless every restored trigger is as it
 * was backed up. A backup file is data: its definitions run only as
 * PostgreSQL's parser reads them (statements.ts), and only as this
 * database's backup table recorded them where it has one.
 */
import { createHash } from 'node:crypto'
import type pg from 'pg'
import { readTriggers, triggerKey } from './catalog.ts'
import { inTransaction, integrity, parseToolkitFile } from './sql.ts'
import { checkCreatedTrigger, createdFunction } from './statements.ts'

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
  /** 2 carries `integrity`; 1 (before it) is still restored, its definitions held to their checksums. */
  version: 1 | 2
  taken_at: string
  triggers: BackedUpTrigger[]
  /** sha256 of the whole file's canonical JSON (sql.ts, integrity). */
  integrity?: string
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
  const unsealed: Backup = { format: 'actline-trigger-backup', version: 2, taken_at: new Date().toISOString(), triggers }
  const backup: Backup = { ...unsealed, integrity: integrity(unsealed) }
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

const ENABLE: Record<BackedUpTrigger['enabled'], string | null> = { O: null, D: 'DISABLE TRIGGER', R: 'ENABLE REPLICA TRIGGER', A: 'ENABLE ALWAYS TRIGGER' }

/** One step of a restore: SQL to run as it is, or a comment on the function the restored trigger calls, named by the catalog once it exists. */
export type RestoreStep = { sql: string } | { functionComment: string | null; trigger: BackedUpTrigger }

/**
 * What recreates `t` exactly: its function, then the trigger (dropped first
 * if present), its state, its comments. The two definitions run only as the
 * parser found them (one CREATE FUNCTION; one CREATE TRIGGER of this name, on
 * this table, calling that function); every other statement is built by the
 * server from the file's values (`format` with %I and %L), never pasted.
 */
export async function restoreSteps(client: pg.ClientBase, t: BackedUpTrigger): Promise<RestoreStep[]> {
  const what = `${triggerKey(t)} in the backup`
  if (!(t.enabled in ENABLE)) throw new Error(`${what}: its state '${String(t.enabled).slice(0, 8)}' is not one PostgreSQL has (O, D, R, A)`)
  const fn = await createdFunction(t.function_def, `the function definition of ${what}`)
  await checkCreatedTrigger(t.trigger_def, `the trigger definition of ${what}`, { schema: t.schema, table: t.table, name: t.name, fn })
  const built = async (template: string, ...values: (string | null)[]) =>
    (await client.query<{ sql: string }>(`SELECT pg_catalog.format($1::text, ${values.map((_, i) => `$${i + 2}::text`).join(', ')}) AS sql`, [template, ...values])).rows[0]!.sql
  const steps: RestoreStep[] = [
    { sql: t.function_def.trim().replace(/;\s*$/, '') },
    { sql: await built('DROP TRIGGER IF EXISTS %I ON %I.%I', t.name, t.schema, t.table) },
    { sql: t.trigger_def },
  ]
  if (ENABLE[t.enabled]) steps.push({ sql: await built(`ALTER TABLE %I.%I ${ENABLE[t.enabled]} %I`, t.schema, t.table, t.name) })
  // Always, NULL included: a comment added since the backup is taken away too (%L prints NULL as NULL).
  steps.push({ sql: await built('COMMENT ON TRIGGER %I ON %I.%I IS %L', t.name, t.schema, t.table, t.trigger_comment) })
  steps.push({ functionComment: t.function_comment, trigger: t })
  return steps
}

/** A step as the dry run prints it. */
export function showStep(step: RestoreStep): string {
  if ('sql' in step) return `${step.sql};`
  const t = step.trigger
  return `-- then: COMMENT ON FUNCTION <the function ${triggerKey(t)} calls, as the catalog names it> IS ${step.functionComment === null ? 'NULL' : JSON.stringify(step.functionComment)};`
}

async function runStep(client: pg.ClientBase, step: RestoreStep): Promise<void> {
  if ('sql' in step) {
    // The extended protocol runs one statement at most: the parser's word, kept by the server too.
    await client.query({ text: step.sql, queryMode: 'extended' } as pg.QueryConfig)
    return
  }
  const t = step.trigger
  const { rows } = await client.query<{ sql: string }>(
    `SELECT pg_catalog.format('COMMENT ON FUNCTION %s IS %L', tg.tgfoid::pg_catalog.regprocedure, $4::text) AS sql
     FROM pg_catalog.pg_trigger tg WHERE tg.tgrelid = pg_catalog.format('%I.%I', $1::text, $2::text)::pg_catalog.regclass AND tg.tgname = $3`,
    [t.schema, t.table, t.name, step.functionComment],
  )
  if (!rows[0]) throw new Error(`${triggerKey(t)} is not in the catalog after its definition ran`)
  await client.query(rows[0].sql)
}

/**
 * Where the database still holds the backup table, a file restores only what
 * a backup of this database recorded there: a file edited to carry other
 * definitions, however well formed, is refused.
 */
async function checkAgainstBackupTable(client: pg.ClientBase, triggers: readonly BackedUpTrigger[]): Promise<void> {
  const exists = (await client.query(`SELECT pg_catalog.to_regclass($1) IS NOT NULL AS ok`, [BACKUP_TABLE])).rows[0].ok as boolean
  if (!exists) return
  for (const t of triggers) {
    const { rowCount } = await client.query(
      `SELECT 1 FROM ${BACKUP_TABLE} WHERE schema_name = $1 AND table_name = $2 AND trigger_name = $3 AND trigger_def = $4 AND function_def = $5 AND function_signature = $6 LIMIT 1`,
      [t.schema, t.table, t.name, t.trigger_def, t.function_def, t.function_signature],
    )
    if (!rowCount) throw new Error(`${triggerKey(t)}: no backup in this database's ${BACKUP_TABLE} holds these definitions; the file was edited, or is another database's`)
  }
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
 * Restores `triggers` in one transaction, once every one has passed the
 * checks above; then compares the catalog with the backup and resolves with
 * the triggers that differ (none after a good restore).
 */
export async function restore(client: pg.ClientBase, triggers: readonly BackedUpTrigger[]): Promise<string[]> {
  await checkAgainstBackupTable(client, triggers)
  const steps: RestoreStep[] = []
  for (const t of triggers) steps.push(...(await restoreSteps(client, t)))
  await inTransaction(client, async () => {
    for (const step of steps) await runStep(client, step)
  })
  const now = new Map((await readDefinitions(client)).map((t) => [triggerKey(t), t]))
  return triggers.flatMap((t) => {
    const n = now.get(triggerKey(t))
    const same = n && n.trigger_def === t.trigger_def && n.function_def === t.function_def && n.enabled === t.enabled && n.trigger_comment === t.trigger_comment && n.function_comment === t.function_comment
    return same ? [] : [triggerKey(t)]
  })
}

export function parseBackup(text: string, file: string): Backup {
  const b = parseToolkitFile<Backup>(text, file, 'actline-trigger-backup', 'backup', [1, 2])
  if (!Array.isArray(b.triggers)) throw new Error(`${file} is not an actline trigger backup: it has no triggers list`)
  for (const t of b.triggers) {
    if (checksum(t.trigger_def, t.function_def) !== t.checksum) throw new Error(`${file}: the definition of ${triggerKey(t)} does not match its checksum: the file was edited or damaged`)
  }
  return b
}
