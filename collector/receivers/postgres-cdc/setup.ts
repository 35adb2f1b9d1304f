/**
 * What change-data capture needs of the server, made or checked at start and
 * kept in step while it runs (reconcile(), every `reconcile_seconds`):
 *
 * - wal_level = logical and the slot: without them nothing can be captured,
 *   a CdcSetupError says what to change (one line).
 * - Two publications, each a list of tables (never `TABLES IN SCHEMA`,
 *   which would publish a keyless table for UPDATE and DELETE and make the
 *   app's writes to it fail): `<publication>` with every table that has a
 *   key or a replica identity, and `<publication>_inserts` (publish =
 *   'insert, truncate') with those that have neither, whose inserts are
 *   captured and whose updates and deletes keep working. A table moves from
 *   one to the other in one transaction when its identity changes, and a
 *   table created later in a captured schema joins at the next reconcile.
 *   One table that cannot be published is reported, never a reason to stop.
 * - The session_context trigger, whose function alone can read the token its
 *   messages carry; and who may emit context messages at all
 *   (restrictMessages).
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { quoteIdent, quoteQualified as qualified } from '../../../lib/sql.ts'
import type { Origin } from './changes.ts'
import type { PostgresCdcReceiverConfig } from './config.ts'
import { pgClient } from '../../../lib/pg-client.ts'

export class CdcSetupError extends Error {}

const SECTION = 'receivers.postgres_cdc'

/** The publications the stream reads: the keyed tables', and the insert-only one for tables without a key. */
export function publications(config: Pick<PostgresCdcReceiverConfig, 'publication'>): [string, string] {
  return [config.publication, `${config.publication}_inserts`]
}

/** What reconcile() found and did: the start log and `cdc check` report it. */
export interface CaptureReport {
  /** Tables captured whole (insert, update, delete, truncate). */
  keyed: string[]
  /** Tables without a key or replica identity: inserts (and truncates) only, until one is added. */
  insertOnly: string[]
  /** Configured schema.table entries that do not exist (yet): picked up when they do. */
  missing: string[]
  /** Tables that could not be published or given the session trigger, with why (usually: not owned by the collector's user). */
  failed: { table: string; why: string }[]
  /** Who may emit context messages: null when any role may. */
  emitters: string[] | null
  /** Primary key columns by schema.table: the row's identity, whatever its replica identity sends. */
  primaryKeys: Map<string, string[]>
}

export async function prepare(config: PostgresCdcReceiverConfig): Promise<{ origin: Origin; report: CaptureReport }> {
  const client = pgClient({ connectionString: config.url, application_name: 'actline cdc', connectionTimeoutMillis: 10_000 })
  await client.connect()
  let database: string
  let report: CaptureReport
  let sessionToken: string | undefined
  try {
    const level = (await client.query('SHOW wal_level')).rows[0].wal_level as string
    if (level !== 'logical') {
      throw new CdcSetupError(`${SECTION}: the server's wal_level is ${level}, and capture needs logical: run ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`)
    }
    database = (await client.query('SELECT current_database() AS d')).rows[0].d
    if (config.session_context) sessionToken = await installSessionFunction(client)
    report = await reconcile(client, config)
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
  const repl = pgClient({ connectionString: config.url, application_name: 'actline cdc', replication: 'database' } as pg.ClientConfig)
  await repl.connect()
  try {
    const systemId = String((await repl.query('IDENTIFY_SYSTEM')).rows[0].systemid)
    return { origin: { systemId, database, slot: config.slot, primaryKeys: report.primaryKeys, sessionToken }, report }
  } finally {
    await repl.end().catch(() => {})
  }
}

/**
 * Brings the publications (and session triggers, and who may emit messages)
 * in step with `config.tables` as the catalog has them now, in one
 * transaction: a table moved between the publications is never out of both.
 * A table that cannot be handled (not owned by the user) is reported and the
 * rest go ahead.
 */
export async function reconcile(client: pg.ClientBase, config: PostgresCdcReceiverConfig): Promise<CaptureReport> {
  const found = await describeTables(client, config.tables)
  const named = config.tables.filter((t) => !t.endsWith('.*'))
  const report: CaptureReport = { keyed: [], insertOnly: [], missing: named.filter((t) => !found.some((f) => f.table === t)), failed: [], emitters: null, primaryKeys: primaryKeysOf(found) }
  const [main, inserts] = publications(config)
  await client.query('BEGIN')
  try {
    const existing = await publicationTables(client, [main, inserts])
    await ensurePublication(client, main, 'insert, update, delete, truncate', existing)
    await ensurePublication(client, inserts, 'insert, truncate', existing)
    const want = new Map<string, string>(found.map((t) => [t.table, t.capturable ? main : inserts]))
    // Out first (a table leaving, or moving to the other publication), then in: never in both.
    for (const [table, pub] of existing.tables) {
      if (want.get(table) !== pub) await client.query(`ALTER PUBLICATION ${quoteIdent(pub)} DROP TABLE ${qualified(table)}`)
    }
    for (const t of found) {
      const pub = want.get(t.table)!
      const step = async (sql: string) => {
        await client.query('SAVEPOINT actline_table')
        try {
          await client.query(sql)
          await client.query('RELEASE SAVEPOINT actline_table')
          return true
        } catch (err) {
          await client.query('ROLLBACK TO SAVEPOINT actline_table')
          const e = err as { code?: string; message: string }
          report.failed.push({ table: t.table, why: e.code === '42501' ? `${e.message}: the collector's user must own it` : e.message })
          return false
        }
      }
      if (existing.tables.get(t.table) !== pub && !(await step(`ALTER PUBLICATION ${quoteIdent(pub)} ADD TABLE ${qualified(t.table)}`))) continue
      if (config.session_context !== existing.triggers.has(t.table) && !(await step(config.session_context ? sessionTriggerSql(qualified(t.table)) : `DROP TRIGGER ${SESSION_TRIGGER} ON ${qualified(t.table)}`))) continue
      ;(t.capturable ? report.keyed : report.insertOnly).push(t.table)
    }
    report.emitters = await restrictMessages(client, config)
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    const e = err as { code?: string; message: string }
    if (e.code === '42501') throw new CdcSetupError(`${SECTION}: cannot make publication ${main} (${e.message}): the user must own the tables, or a DBA makes it: CREATE PUBLICATION ${main}`)
    throw err
  }
  return report
}

async function publicationTables(client: pg.ClientBase, names: string[]): Promise<{ tables: Map<string, string>; publications: Set<string>; triggers: Set<string> }> {
  const pubs = (await client.query('SELECT pubname FROM pg_publication WHERE pubname = ANY($1)', [names])).rows.map((r) => r.pubname as string)
  const { rows } = await client.query(
    `SELECT p.pubname, n.nspname || '.' || c.relname AS t FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
     JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = ANY($1)`,
    [names],
  )
  const triggers = (await client.query(`SELECT n.nspname || '.' || c.relname AS t FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE g.tgname = $1`, [SESSION_TRIGGER])).rows
  return { tables: new Map(rows.map((r) => [r.t as string, r.pubname as string])), publications: new Set(pubs), triggers: new Set(triggers.map((r) => r.t as string)) }
}

/** The publication, publishing `publish`; one an earlier version made FOR TABLES IN SCHEMA gives its schemas up (its tables are listed one by one now). */
async function ensurePublication(client: pg.ClientBase, name: string, publish: string, existing: { publications: Set<string> }): Promise<void> {
  if (!existing.publications.has(name)) {
    await client.query(`CREATE PUBLICATION ${quoteIdent(name)} WITH (publish = '${publish}')`)
    return
  }
  // Only when it differs: altering a publication makes the stream describe its tables anew.
  const { rows: [p] } = await client.query(`SELECT concat_ws(', ', CASE WHEN pubinsert THEN 'insert' END, CASE WHEN pubupdate THEN 'update' END, CASE WHEN pubdelete THEN 'delete' END, CASE WHEN pubtruncate THEN 'truncate' END) AS publish FROM pg_publication WHERE pubname = $1`, [name])
  if (p.publish !== publish) await client.query(`ALTER PUBLICATION ${quoteIdent(name)} SET (publish = '${publish}')`)
  if ((await client.query(`SELECT to_regclass('pg_catalog.pg_publication_namespace') IS NOT NULL AS has`)).rows[0].has) {
    const { rows } = await client.query(`SELECT n.nspname FROM pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE p.pubname = $1`, [name])
    for (const r of rows) await client.query(`ALTER PUBLICATION ${quoteIdent(name)} DROP TABLES IN SCHEMA ${quoteIdent(r.nspname)}`)
  }
}

/** The statement-level trigger's name, and its function's: one per database, shared by every captured table. */
export const SESSION_TRIGGER = 'actline_session_context'

/** Where the session function finds its token: a table only its owner (the collector's user) can read. */
const SESSION_KEY_TABLE = 'public.actline_session_key'

/**
 * The session_context trigger's function. SECURITY DEFINER: it runs as the
 * collector's user, who alone may read the token (and emit messages, when
 * restrictMessages could restrict them), so a session cannot send a message
 * that passes for it. The role it names is the session's: `SET ROLE`'s if
 * set, else the login (current_user inside would be the function's owner).
 * Every name in it is schema-qualified, so the caller's search_path cannot
 * put its own function under it; a `SET search_path` clause would do the
 * same at the price of a GUC save and restore per statement, which cost the
 * app's writes about 25 points in bench:cdc.
 */
const SESSION_FUNCTION_SQL = `CREATE OR REPLACE FUNCTION public.${SESSION_TRIGGER}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
  BEGIN
    PERFORM pg_catalog.pg_logical_emit_message(true, 'actline_session', CAST(pg_catalog.json_build_object(
      'db_role', CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN CAST(session_user AS pg_catalog.text) ELSE pg_catalog.current_setting('role') END,
      'application_name', pg_catalog.current_setting('application_name'),
      'token', (SELECT k.token FROM ${SESSION_KEY_TABLE} AS k LIMIT 1)) AS pg_catalog.text));
    RETURN NULL;
  END $$`

/** The trigger on one table (schema.table, quoted). */
export const sessionTriggerSql = (table: string) =>
  `CREATE TRIGGER ${SESSION_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION public.${SESSION_TRIGGER}()`

/** The token table (made once, kept across starts: messages already in the WAL carry it) and the function; returns the token. */
export async function installSessionFunction(client: pg.ClientBase): Promise<string> {
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS ${SESSION_KEY_TABLE} (token text NOT NULL)`)
    await client.query(`REVOKE ALL ON ${SESSION_KEY_TABLE} FROM PUBLIC`)
    await client.query(`INSERT INTO ${SESSION_KEY_TABLE} SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM ${SESSION_KEY_TABLE})`, [randomBytes(24).toString('hex')])
    await client.query(SESSION_FUNCTION_SQL)
    return (await client.query(`SELECT token FROM ${SESSION_KEY_TABLE} LIMIT 1`)).rows[0].token
  } catch (err) {
    const e = err as { code?: string; message: string }
    if (e.code === '42501') throw new CdcSetupError(`${SECTION}.session_context: cannot install the ${SESSION_TRIGGER} function (${e.message}): the user needs CREATE on schema public, or set session_context: false`)
    throw err
  }
}

/**
 * Who may emit logical messages, and so claim who made a transaction's
 * changes: pg_logical_emit_message is executable by PUBLIC out of the box.
 * With `restrict_messages`, EXECUTE is revoked from PUBLIC (and from any
 * other grantee) and granted to `context_roles` (default: the owners of the
 * captured tables, the roles apps write them as) and the collector's user.
 * Only a superuser may change a built-in function's grants: as another user
 * this leaves them as they are. Returns who may emit (superusers always
 * may), or null when anyone may.
 */
async function restrictMessages(client: pg.ClientBase, config: PostgresCdcReceiverConfig): Promise<string[] | null> {
  if (config.restrict_messages) {
    const { rows: [me] } = await client.query(`SELECT rolsuper FROM pg_roles WHERE rolname = current_user`)
    if (me.rolsuper) {
      const roles = config.context_roles ?? (await client.query(
        `SELECT DISTINCT pg_get_userbyid(c.relowner) AS r FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_publication_rel pr ON pr.prrelid = c.oid JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = ANY($1)`,
        [publications(config)],
      )).rows.map((r) => r.r as string)
      const allowed = new Set([...roles, (await client.query('SELECT current_user AS u')).rows[0].u as string])
      for (const f of await emitFunctions(client)) {
        if (f.public) await client.query(`REVOKE EXECUTE ON FUNCTION ${f.signature} FROM PUBLIC`)
        for (const g of f.grantees) if (!allowed.has(g)) await client.query(`REVOKE EXECUTE ON FUNCTION ${f.signature} FROM ${quoteIdent(g)}`)
        for (const r of allowed) if (!f.grantees.includes(r)) await client.query(`GRANT EXECUTE ON FUNCTION ${f.signature} TO ${quoteIdent(r)}`)
      }
    }
  }
  return whoMayEmit(client)
}

/** Each pg_logical_emit_message (PostgreSQL 17 adds a flush argument) and the roles granted it by name. */
async function emitFunctions(client: pg.ClientBase): Promise<{ signature: string; public: boolean; grantees: string[] }[]> {
  const { rows } = await client.query(
    `SELECT p.oid::regprocedure::text AS signature, p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public,
            coalesce((SELECT array_agg(DISTINCT pg_get_userbyid(a.grantee)::text) FROM aclexplode(p.proacl) a WHERE a.grantee <> 0 AND a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE'), '{}'::text[]) AS grantees
     FROM pg_proc p WHERE p.proname = 'pg_logical_emit_message' AND p.pronamespace = 'pg_catalog'::regnamespace`,
  )
  return rows
}

/** The roles that may emit context messages besides superusers; null when PUBLIC may. */
export async function whoMayEmit(client: pg.ClientBase): Promise<string[] | null> {
  const functions = await emitFunctions(client)
  if (functions.some((f) => f.public)) return null
  return [...new Set(functions.flatMap((f) => f.grantees))].sort()
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
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND (n.nspname || '.' || c.relname = ANY($1) OR n.nspname = ANY($2))
       AND n.nspname || '.' || c.relname <> '${SESSION_KEY_TABLE}'
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
