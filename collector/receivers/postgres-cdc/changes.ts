/**
 * A committed transaction's row changes, as pgoutput streams them, made into
 * `database` activities: one per row change, keyed by the table's replica
 * identity (its primary key by default), with the old and new values
 * (redacted by column name), the transaction id, the commit time and LSN.
 *
 * Each id is stable: derived from the server (its system identifier), the
 * slot, the transaction's commit LSN and the change's place in it, the same
 * on every replay of the stream. After a crash the slot sends again what was
 * not confirmed, and those activities are retries the collector and the
 * stores recognise, not new rows.
 */
import type { ActivityInputType } from '../../../schemas/activity.ts'
import { changeDetails, entityIdOf } from '../../../schemas/row-change.ts'
import { stableUuidv7 } from '../../../schemas/uuidv7.ts'

export interface Relation {
  schema: string
  name: string
  /** The replica identity's columns (the primary key by default); none for a table without. */
  keyColumns: string[]
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index'
}

export type Change =
  | { tag: 'insert'; relation: Relation; new: Record<string, unknown> }
  | { tag: 'update'; relation: Relation; key: Record<string, unknown> | null; old: Record<string, unknown> | null; new: Record<string, unknown> }
  | { tag: 'delete'; relation: Relation; key: Record<string, unknown> | null; old: Record<string, unknown> | null }
  | { tag: 'truncate'; relations: Relation[] }

/** Who made a transaction's changes, as the app told the database (a transactional logical message, prefix `actline`). */
export interface TransactionContext {
  actor_id?: string
  tenant_id?: string
  trace_id?: string
  span_id?: string
  correlation_id?: string
  /** The writing session's current_user and application_name: from the session_context trigger. */
  db_role?: string
  application_name?: string
}

export const CONTEXT_PREFIX = 'actline'

/**
 * The context an app put in its transaction with
 * `SELECT pg_logical_emit_message(true, 'actline', '{"actor_id": ...}')`: the
 * known fields of a JSON object, each a bounded string (ids in their format);
 * undefined when it is no such object. Anything else in it is ignored.
 */
export function parseContext(content: Uint8Array): TransactionContext | undefined {
  if (content.length > 4096) return undefined
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(content).toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const v = value as Record<string, unknown>
  const text = (k: string, re = /^[^\u0000]{1,256}$/) => (typeof v[k] === 'string' && re.test(v[k] as string) ? { [k]: v[k] as string } : {})
  return {
    ...text('actor_id'),
    ...text('tenant_id'),
    ...text('correlation_id'),
    ...text('trace_id', /^[0-9a-f]{32}$/),
    ...text('span_id', /^[0-9a-f]{16}$/),
    ...text('db_role'),
    ...text('application_name'),
  }
}

export interface Transaction {
  /** Set by the transaction's `actline` message: applied to the changes after it. */
  context?: TransactionContext
  xid: number
  commitLsn: string
  /** Microseconds since the Unix epoch, as pgoutput gives it. */
  commitTime: bigint
  changes: Change[]
}

export interface Origin {
  /** The server's system identifier (IDENTIFY_SYSTEM): LSNs are only unique within one. */
  systemId: string
  database: string
  slot: string
  /** Primary key columns by schema.table: the row's identity, whatever its replica identity sends. */
  primaryKeys: Map<string, string[]>
}

/** JSON-safe values: bigint as a string, bytea as hex, the rest as pg parsed them. */
function plain(row: Record<string, unknown> | null | undefined): Record<string, unknown> | undefined {
  if (!row) return undefined
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(row)) {
    if (v === undefined) continue // an unchanged TOASTed value: pgoutput does not send it
    out[k] = typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : v
  }
  return out
}

/**
 * The row's identity: its primary key. A replica identity of FULL sends every
 * column as "key", which is no entity id (and may hold a secret); of DEFAULT
 * or an index, the key columns are the key.
 */
export function keyOf(relation: Relation, origin: Origin): string[] {
  return origin.primaryKeys.get(`${relation.schema}.${relation.name}`) ?? (relation.replicaIdentity === 'full' ? [] : relation.keyColumns)
}

/** The activities of `txn.changes` from `from` on (a huge transaction is written in pieces); each keeps its place in the transaction. */
export function toActivities(txn: Transaction, origin: Origin, redacted: (column: string) => boolean, from = 0): ActivityInputType[] {
  const ms = Number(txn.commitTime / 1000n)
  const { db_role, application_name, ...who } = txn.context ?? {}
  const session = { ...(db_role && { 'db.user': db_role }), ...(application_name && { 'db.application_name': application_name }) }
  const out: ActivityInputType[] = []
  let index = from
  const push = (relation: Relation, op: string, values: { old?: Record<string, unknown>; new?: Record<string, unknown>; key?: Record<string, unknown> }) => {
    const place = index++
    const id = stableUuidv7(ms, 'actline-cdc', origin.systemId, origin.slot, txn.commitLsn, String(place))
    const details = changeDetails(values, redacted)
    const key = keyOf(relation, origin)
    const entity = entityIdOf(key, values.new ?? values.key ?? values.old, redacted)
    out.push({
      id,
      timestamp: ms,
      source: 'database',
      action: `db.${op}`,
      category: 'data_modification',
      entity_type: relation.name,
      ...(entity !== undefined && { entity_id: entity }),
      ...who,
      ...(details && { details }),
      attributes: {
        'db.schema': relation.schema,
        'db.xid': txn.xid,
        'db.commit_lsn': txn.commitLsn,
        // Its place in the transaction: the changes of one commit share its time.
        'db.change_index': place,
        'db.replica_identity': relation.replicaIdentity,
        'cdc.slot': origin.slot,
        ...(key.length === 0 && { 'cdc.no_key': true }),
        ...session,
      },
    })
  }
  for (const c of txn.changes.slice(from)) {
    if (c.tag === 'insert') push(c.relation, 'insert', { new: plain(c.new) })
    else if (c.tag === 'update') push(c.relation, 'update', { old: plain(c.old), new: plain(c.new), key: plain(c.key) })
    // Without REPLICA IDENTITY FULL a delete carries the key only: that is the old row as far as it is known.
    else if (c.tag === 'delete') push(c.relation, 'delete', { old: plain(c.old ?? c.key), key: plain(c.key) })
    else for (const r of c.relations) push(r, 'truncate', {})
  }
  return out
}
