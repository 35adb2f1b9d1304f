/**
 * What change-data capture needs of the server, made or checked at start:
 * wal_level = logical, the configured tables (each with a key: publishing a
 * table without one makes its UPDATEs and DELETEs fail), the publication in
 * step with them, the slot, and the server's identity for the ids. What the
 * user must change there is a CdcSetupError, one line saying what; a server
 * that cannot be reached is an ordinary error, retried.
 */
import pg from 'pg'
import { quoteIdent } from '../../../lib/sql.ts'
import type { Origin } from './changes.ts'
import type { PostgresCdcReceiverConfig } from './config.ts'

export class CdcSetupError extends Error {}

const SECTION = 'receivers.postgres_cdc'

export async function prepare(config: PostgresCdcReceiverConfig): Promise<Origin> {
  const client = new pg.Client({ connectionString: config.url, application_name: 'actline cdc', connectionTimeoutMillis: 10_000 })
  await client.connect()
  let database: string
  let primaryKeys: Map<string, string[]>
  try {
    const level = (await client.query('SHOW wal_level')).rows[0].wal_level as string
    if (level !== 'logical') {
      throw new CdcSetupError(`${SECTION}: the server's wal_level is ${level}, and capture needs logical: run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`)
    }
    database = (await client.query('SELECT current_database() AS d')).rows[0].d
    const tables = config.tables.filter((t) => !t.endsWith('.*'))
    const schemas = config.tables.filter((t) => t.endsWith('.*')).map((t) => t.slice(0, -2))
    const qualified = (t: string) => t.split('.').map(quoteIdent).join('.')
    const found = await describeTables(client, config.tables)
    for (const t of tables) if (!found.some((f) => f.table === t)) throw new CdcSetupError(`${SECTION}.tables: no table ${t} in ${database}`)
    // Published, their UPDATEs and DELETEs would fail in the app.
    const keyless = found.filter((f) => !f.capturable)
    if (keyless.length) {
      const names = keyless.map((f) => f.table)
      throw new CdcSetupError(`${SECTION}.tables: ${names.join(', ')} ${names.length > 1 ? 'have' : 'has'} no primary key or replica identity, and publishing ${names.length > 1 ? 'them' : 'it'} would make ${names.length > 1 ? 'their' : 'its'} UPDATEs and DELETEs fail: add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL, or leave ${names.length > 1 ? 'them' : 'it'} out`)
    }
    primaryKeys = primaryKeysOf(found)
    await sessionContext(client, found, config.session_context)
    const target = [...(tables.length ? [`TABLE ${tables.map(qualified).join(', ')}`] : []), ...(schemas.length ? [`TABLES IN SCHEMA ${schemas.map(quoteIdent).join(', ')}`] : [])].join(', ')
    const exists = (await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [config.publication])).rowCount! > 0
    try {
      await client.query(exists ? `ALTER PUBLICATION ${quoteIdent(config.publication)} SET ${target}` : `CREATE PUBLICATION ${quoteIdent(config.publication)} FOR ${target}`)
    } catch (err) {
      const e = err as { code?: string; message: string }
      if (e.code === '42501') throw new CdcSetupError(`${SECTION}: cannot ${exists ? 'change' : 'create'} publication ${config.publication} (${e.message}): the user must own the tables, or a DBA makes it: CREATE PUBLICATION ${config.publication} FOR ${target}`)
      throw new CdcSetupError(`${SECTION}: cannot ${exists ? 'change' : 'create'} publication ${config.publication}: ${e.message}`)
    }
    const slot = (await client.query('SELECT plugin, database FROM pg_replication_slots WHERE slot_name = $1', [config.slot])).rows[0]
    if (slot && (slot.plugin !== 'pgoutput' || slot.database !== database)) {
      throw new CdcSetupError(`${SECTION}.slot: slot ${config.slot} exists for ${slot.plugin ?? 'physical replication'} on ${slot.database ?? 'no database'}: name another slot`)
    }
    if (!slot) {
      try {
        await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [config.slot])
      } catch (err) {
        const e = err as { code?: string; message: string }
        if (e.code === '42501') throw new CdcSetupError(`${SECTION}: cannot create the replication slot (${e.message}): the user needs the REPLICATION attribute (ALTER ROLE ... REPLICATION)`)
        throw new CdcSetupError(`${SECTION}: cannot create replication slot ${config.slot}: ${e.message}`)
      }
    }
  } finally {
    await client.end().catch(() => {})
  }
  // LSNs are unique within one server only: its system identifier goes into every id.
  const repl = new pg.Client({ connectionString: config.url, application_name: 'actline cdc', replication: 'database' } as pg.ClientConfig)
  await repl.connect()
  try {
    const systemId = String((await repl.query('IDENTIFY_SYSTEM')).rows[0].systemid)
    return { systemId, database, slot: config.slot, primaryKeys }
  } finally {
    await repl.end().catch(() => {})
  }
}

/** The statement-level trigger's name, and its function's: one per database, shared by every captured table. */
export const SESSION_TRIGGER = 'actline_session_context'

/** The session_context trigger's function: the message, with the writing session's role and application_name. */
export const SESSION_FUNCTION_SQL = `CREATE OR REPLACE FUNCTION public.${SESSION_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_logical_emit_message(true, 'actline', json_build_object('db_role', current_user::text, 'application_name', current_setting('application_name'))::text);
    RETURN NULL;
  END $$`

/** The trigger on one table (schema.table, quoted). */
export const sessionTriggerSql = (table: string) =>
  `CREATE TRIGGER ${SESSION_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION public.${SESSION_TRIGGER}()`

/**
 * Puts the session_context trigger on each captured table, or takes it off
 * when the option is off. BEFORE each statement, so its message precedes the
 * statement's rows in the transaction; it writes no table, and the message
 * commits or rolls back with them.
 */
async function sessionContext(client: pg.Client, tables: readonly TableIdentity[], on: boolean): Promise<void> {
  try {
    if (on) await client.query(SESSION_FUNCTION_SQL)
    // Only where it changes something: a trigger's DDL locks its table, and each start would otherwise wait on the app's transactions.
    const { rows } = await client.query(`SELECT n.nspname || '.' || c.relname AS t FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE g.tgname = $1`, [SESSION_TRIGGER])
    const has = new Set(rows.map((r: { t: string }) => r.t))
    for (const t of tables) {
      if (has.has(t.table) === on) continue
      const table = t.table.split('.').map(quoteIdent).join('.')
      await client.query(on
        ? sessionTriggerSql(table)
        : `DROP TRIGGER ${SESSION_TRIGGER} ON ${table}`)
    }
  } catch (err) {
    const e = err as { code?: string; message: string }
    if (e.code === '42501' || e.code === '42883') throw new CdcSetupError(`${SECTION}.session_context: cannot ${on ? 'install' : 'remove'} the ${SESSION_TRIGGER} trigger (${e.message}): the user must own the captured tables${on ? ', or set session_context: false' : ''}`)
    throw err
  }
}

export interface TableIdentity {
  /** schema.table */
  table: string
  primaryKey: string[] | null
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index'
  /** Its UPDATEs and DELETEs keep working once published: a primary key (identity default), FULL, or a replica identity index. */
  capturable: boolean
}

const IDENTITY = { d: 'default', n: 'nothing', f: 'full', i: 'index' } as const

/** The tables `patterns` (schema.table, schema.*) name, each with its key and replica identity: what capture may use of it. */
export async function describeTables(client: pg.ClientBase, patterns: readonly string[]): Promise<TableIdentity[]> {
  const { rows } = await client.query(
    `SELECT n.nspname || '.' || c.relname AS t, c.relreplident AS ident,
            (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) AS ident_index
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND (n.nspname || '.' || c.relname = ANY($1) OR n.nspname = ANY($2))
     ORDER BY 1`,
    [patterns.filter((t) => !t.endsWith('.*')), patterns.filter((t) => t.endsWith('.*')).map((t) => t.slice(0, -2))],
  )
  return rows.map((r) => {
    const replicaIdentity = IDENTITY[r.ident as keyof typeof IDENTITY]
    const primaryKey = (r.pk as string[] | null) ?? null
    return { table: r.t, primaryKey, replicaIdentity, capturable: replicaIdentity === 'full' || (replicaIdentity === 'default' && primaryKey !== null) || (replicaIdentity === 'index' && r.ident_index) }
  })
}

/** Primary key columns by schema.table, for the tables that have one. */
export function primaryKeysOf(tables: readonly TableIdentity[]): Map<string, string[]> {
  return new Map(tables.flatMap((t) => (t.primaryKey ? [[t.table, t.primaryKey] as [string, string[]]] : [])))
}
