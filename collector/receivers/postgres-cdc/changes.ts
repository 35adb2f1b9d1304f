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
import { timingSafeEqual } from 'node:crypto'
import type { ActivityInputType } from '../../../schemas/activity.ts'
import { changeDetails, entityIdOf, type RowValues } from '../../../schemas/row-change.ts'
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

/** Who made a transaction's changes: the app's message (prefix `actline`) and the session_context trigger's (prefix `actline_session`). */
export interface TransactionContext {
  actor_id?: string
  tenant_id?: string
  trace_id?: string
  span_id?: string
  correlation_id?: string
  /** The writing session's role and application_name: only ever from the session_context trigger's message. */
  db_role?: string
  application_name?: string
}

export const CONTEXT_PREFIX = 'actline'
export const SESSION_PREFIX = 'actline_session'

const MAX_MESSAGE_BYTES = 4096
const strict = new TextDecoder('utf-8', { fatal: true })

/** A JSON object from a message's bytes: valid UTF-8, bounded; undefined otherwise. */
function messageObject(content: Uint8Array): Record<string, unknown> | undefined {
  if (content.length > MAX_MESSAGE_BYTES) return undefined
  try {
    const value: unknown = JSON.parse(strict.decode(content))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** Printable, valid Unicode (no lone surrogate, no control character), 1-256 characters. */
const TEXT = /^[^\p{Cc}\p{Cs}]{1,256}$/u
const FORMATS: Record<string, RegExp> = { actor_id: TEXT, tenant_id: TEXT, correlation_id: TEXT, trace_id: /^[0-9a-f]{32}$/, span_id: /^[0-9a-f]{16}$/ }

/**
 * The context an app put in its transaction with
 * `SELECT pg_logical_emit_message(true, 'actline', '{"actor_id": ...}')`.
 * Undefined, so the message is ignored whole, when it is no JSON object of
 * valid UTF-8 within 4 KiB, or when a field it names is not a string of its
 * format (a lone surrogate, a control character, a number, over 256
 * characters): a change is stored without a context rather than with a part
 * of a hostile one. Other fields are ignored, db_role and application_name
 * among them: which login wrote comes from the trigger, never from a message
 * a session can send.
 */
export function parseContext(content: Uint8Array): TransactionContext | undefined {
  const v = messageObject(content)
  if (!v) return undefined
  const out: Record<string, string> = {}
  for (const [field, format] of Object.entries(FORMATS)) {
    if (!(field in v)) continue
    const value = v[field]
    if (typeof value !== 'string' || !format.test(value)) return undefined
    out[field] = value
  }
  return out as TransactionContext
}

/**
 * The session_context trigger's message: the writing session's role and
 * application_name, with the token only the trigger's function can read
 * (setup.ts). Undefined for a message without that token: a session that
 * emits its own `actline_session` message claims nothing.
 */
export function parseSession(content: Uint8Array, token: string | undefined): TransactionContext | undefined {
  const v = token ? messageObject(content) : undefined
  if (!v || typeof v.token !== 'string' || !sameText(v.token, token!)) return undefined
  const text = (k: string) => (typeof v[k] === 'string' && TEXT.test(v[k] as string) ? { [k]: v[k] as string } : {})
  return { ...text('db_role'), ...text('application_name') }
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export interface Transaction {
  /** Set by the transaction's `actline` message: applied to the changes after it. */
  context?: TransactionContext
  xid: number
  commitLsn: string
  /** Microseconds since the Unix epoch, as pgoutput gives it. */
  commitTime: bigint
  /** The changes not yet written to the log: a huge transaction is written in pieces and not held whole. */
  changes: Change[]
  /** The place in the transaction of changes[0]: how many were written before. */
  offset: number
}

export interface Origin {
  /** The server's system identifier (IDENTIFY_SYSTEM): LSNs are only unique within one. */
  systemId: string
  database: string
  slot: string
  /** What the session_context trigger's messages carry to prove they are its own; undefined when the option is off. */
  sessionToken?: string
  /** Primary key columns by schema.table: the row's identity, whatever its replica identity sends. */
  primaryKeys: Map<string, string[]>
}

/**
 * A tuple's values, already storable (values.ts read them from PostgreSQL's
 * text). An unchanged TOASTed column of an UPDATE is not in the stream
 * (pgoutput sends no value, only that it did not change): it is left out of
 * the row and named in `unchanged`.
 */
function plain(row: Record<string, unknown> | null | undefined, unchanged?: string[]): Record<string, unknown> | undefined {
  if (!row) return undefined
  const out: Record<string, unknown> = {}
  for (const k in row) {
    const v = row[k]
    if (v === undefined) unchanged?.push(k)
    else out[k] = v
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

/** The activities of `txn.changes`, each with its place in the transaction (a huge one is written in pieces). */
export function toActivities(txn: Transaction, origin: Origin, redacted: (column: string) => boolean): ActivityInputType[] {
  const ms = Number(txn.commitTime / 1000n)
  const { db_role, application_name, ...who } = txn.context ?? {}
  const session = { ...(db_role && { 'db.user': db_role }), ...(application_name && { 'db.application_name': application_name }) }
  const out: ActivityInputType[] = []
  let index = txn.offset
  const push = (relation: Relation, op: string, values: RowValues) => {
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
  for (const c of txn.changes) {
    if (c.tag === 'insert') push(c.relation, 'insert', { new: plain(c.new) })
    else if (c.tag === 'update') {
      const unchanged: string[] = []
      const row = plain(c.new, unchanged)
      push(c.relation, 'update', { old: plain(c.old), new: row, key: plain(c.key), ...(unchanged.length > 0 && { unchanged }) })
    }
    // Without REPLICA IDENTITY FULL a delete carries the key only: that is the old row as far as it is known.
    else if (c.tag === 'delete') push(c.relation, 'delete', { old: plain(c.old ?? c.key), key: plain(c.key) })
    else for (const r of c.relations) push(r, 'truncate', {})
  }
  return out
}
