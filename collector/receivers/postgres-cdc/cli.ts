/**
 * `actline cdc status | check | drop-slot`: what change-data capture holds on
 * the server and whether it can run there, read with the collector's config
 * (receivers.postgres_cdc; --db overrides its url). An unconsumed slot
 * keeps WAL for ever, so `status` shows how much, and `drop-slot` is the way
 * out. It lives with the receiver, whose table checks it shares
 * (setup.describeTables); the registry hands it to the command line.
 */
import pg from 'pg'
import { redactUrl } from '../../../lib/redact.ts'
import { quoteIdent, quoteQualified } from '../../../lib/sql.ts'
import type { PostgresCdcReceiverConfig } from './config.ts'
import { describeTables, publications, whoMayEmit } from './setup.ts'
import { pgClient } from '../../../lib/pg-client.ts'

export interface CdcOptions {
  db?: string
  json?: boolean
  yes?: boolean
}

type Out = { code: number; text: string; json: unknown }

export async function cdcCommand(sub: string | undefined, c: PostgresCdcReceiverConfig, o: CdcOptions): Promise<number> {
  const url = o.db ?? c.url
  if (sub !== 'status' && sub !== 'check' && sub !== 'drop-slot') {
    console.error(`cdc needs status, check or drop-slot, e.g. actline cdc status --config collector.yaml`)
    return 2
  }
  if (!url) {
    console.error('cdc: no database: set receivers.postgres_cdc.url (or ACTLINE_CDC_URL), or pass --db postgres://...')
    return 1
  }
  const client = pgClient({ connectionString: url, application_name: 'actline cdc', connectionTimeoutMillis: 10_000 })
  try {
    await client.connect()
  } catch (err) {
    console.error(`cdc ${sub}: cannot connect to ${redactUrl(url)}: ${(err as Error).message}`)
    return 1
  }
  try {
    const out = sub === 'status' ? await status(client, c) : sub === 'check' ? await check(client, c) : await dropSlot(client, c, o.yes === true)
    console.log(o.json ? JSON.stringify(out.json, null, 2) : out.text)
    return out.code
  } catch (err) {
    console.error(`cdc ${sub}: ${(err as Error).message}`)
    return 1
  } finally {
    await client.end().catch(() => {})
  }
}

type Section = PostgresCdcReceiverConfig

async function status(client: pg.Client, c: Section): Promise<Out> {
  const { rows } = await client.query(
    `SELECT slot_name, plugin, database, active, active_pid, confirmed_flush_lsn::text AS confirmed, wal_status,
            greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::float8 AS lag_bytes,
            current_setting('max_slot_wal_keep_size') AS max_slot_wal_keep_size
     FROM pg_replication_slots WHERE slot_name = $1`,
    [c.slot],
  )
  const [main, inserts] = publications(c)
  const published = (await client.query(`SELECT pubname, schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = ANY($1) ORDER BY 2`, [[main, inserts]])).rows
  const tables = published.filter((r) => r.pubname === main).map((r) => r.t as string)
  const insertOnly = published.filter((r) => r.pubname === inserts).map((r) => r.t as string)
  const slot = rows[0]
  if (!slot) return { code: 0, text: `no slot ${c.slot} on this server (the collector makes it at its first start); publication ${c.publication}: ${tables.length ? tables.join(', ') : 'none'}`, json: { slot: null, publication: { name: c.publication, tables, insert_only: insertOnly } } }
  const mib = (b: number) => `${(b / 1024 ** 2).toFixed(1)} MiB`
  const text = [
    `slot ${slot.slot_name} (${slot.plugin}, database ${slot.database}): ${slot.active ? `streaming to pid ${slot.active_pid}` : 'not being read'}`,
    `  confirmed up to ${slot.confirmed}; the server keeps ${mib(slot.lag_bytes)} of WAL for it (wal_status ${slot.wal_status}, max_slot_wal_keep_size ${slot.max_slot_wal_keep_size})`,
    `  publication ${c.publication}: ${tables.length ? tables.join(', ') : 'no tables'}`,
    ...(insertOnly.length ? [`  inserts only (no key or replica identity), publication ${inserts}: ${insertOnly.join(', ')}`] : []),
    ...(slot.active ? [] : ['  while no collector reads it, the WAL it holds grows: start the collector, or actline cdc drop-slot --yes']),
  ].join('\n')
  return { code: 0, text, json: { slot, publication: { name: c.publication, tables, insert_only: insertOnly } } }
}

/** What capture needs of the server and of each configured table; exit 1 when something blocks it. */
async function check(client: pg.Client, c: Section): Promise<Out> {
  const q = async (sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows
  const [s] = await q(`SELECT current_setting('wal_level') AS wal_level, current_setting('max_replication_slots')::int AS max_slots,
      (SELECT count(*)::int FROM pg_replication_slots) AS slots, rolreplication OR rolsuper AS replication
    FROM pg_roles WHERE rolname = current_user`)
  // warn: capture runs, partly or with a hole an operator should know of.
  const lines: { ok: boolean; warn?: boolean; what: string }[] = []
  lines.push({ ok: s.wal_level === 'logical', what: s.wal_level === 'logical' ? 'wal_level is logical' : `wal_level is ${s.wal_level}: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL` })
  lines.push({ ok: s.replication, what: s.replication ? 'the user may replicate' : 'the user lacks REPLICATION: ALTER ROLE ... REPLICATION' })
  lines.push({ ok: s.slots < s.max_slots, what: `${s.slots} of max_replication_slots ${s.max_slots} slots in use` })
  const tables = []
  for (const t of c.tables) {
    const found = await describeTables(client, [t])
    if (found.length === 0) lines.push({ ok: true, warn: true, what: `${t}: no such table (yet): captured once it exists` })
    for (const d of found) {
      const pk = d.primaryKey
      const name = quoteQualified(d.table)
      const old = d.replicaIdentity === 'full' ? 'old values: the whole row (REPLICA IDENTITY FULL)' : pk ? `old values: the key only (${pk.join(', ')}); ALTER TABLE ${name} REPLICA IDENTITY FULL for whole old rows` : ''
      lines.push(d.capturable
        ? { ok: true, what: `${d.table}: key ${pk ? pk.join(', ') : '(none: changes carry no entity_id)'}; ${old}` }
        : { ok: true, warn: true, what: `${d.table}: no primary key or replica identity: inserts captured, updates and deletes not (publishing them would make them fail); to capture them: ALTER TABLE ${name} REPLICA IDENTITY FULL, or add a primary key` })
      tables.push({ table: d.table, primary_key: pk, replica_identity: d.replicaIdentity, captures: d.capturable ? 'all' : 'inserts' })
    }
  }
  const emitters = await whoMayEmit(client)
  lines.push(emitters === null
    ? { ok: true, warn: true, what: `any role may emit context messages and claim who made a change: the collector revokes that when its user is a superuser (restrict_messages), or a superuser runs REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) FROM PUBLIC; GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO <the app's role>` }
    : { ok: true, what: `context messages: only ${emitters.length ? `${emitters.join(', ')} and superusers` : 'superusers'} may emit them` })
  const ok = lines.every((l) => l.ok)
  return {
    code: ok ? 0 : 1,
    text: [...lines.map((l) => `${!l.ok ? 'FAIL' : l.warn ? 'warn' : 'ok  '}  ${l.what}`), '', ok ? 'capture can run' : 'capture cannot run until the FAIL lines are fixed'].join('\n'),
    json: { ok, checks: lines, tables, context_emitters: emitters },
  }
}

async function dropSlot(client: pg.Client, c: Section, yes: boolean): Promise<Out> {
  const [slot] = (await client.query(`SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1`, [c.slot])).rows
  if (!slot) return { code: 0, text: `no slot ${c.slot}: nothing to drop`, json: { dropped: false } }
  if (slot.active) return { code: 1, text: `slot ${c.slot} is being read by pid ${slot.active_pid}: stop that collector first`, json: { dropped: false, active_pid: slot.active_pid } }
  const sql = [`SELECT pg_drop_replication_slot('${c.slot}')`, ...publications(c).map((p) => `DROP PUBLICATION IF EXISTS ${quoteIdent(p)}`)]
  if (!yes) return { code: 0, text: `-- would run (nothing changed; add --yes; changes made since the slot's position are then not captured):\n${sql.map((s) => `${s};`).join('\n')}`, json: { dry_run: true, sql } }
  for (const s of sql) await client.query(s)
  return { code: 0, text: `dropped slot ${c.slot} and publication ${c.publication}: the server no longer keeps WAL for actline`, json: { dropped: true } }
}
