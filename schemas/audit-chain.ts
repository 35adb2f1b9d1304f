/**
 * The audit trail's hash chain (issue 17): what a row's link is made of,
 * in one place for the writer (the PostgreSQL exporter) and every reader
 * that verifies (actline audit verify). docs/audit-integrity.md specifies
 * the encoding with test vectors, so another language can verify a chain.
 *
 * One chain per tenant; rows without a tenant form the chain ''. Each row
 * carries its chain, its sequence number in it (from 1) and
 * `hash = SHA-256(prev_hash || canonical(row))`, prev_hash being the row
 * before's hash (32 zero bytes before the first row).
 */
import { createHash } from 'node:crypto'
import { isIPv6 } from 'node:net'
import type { Activity } from './activity.ts'
import { ACTIVITY_ROW, type FieldKind, type RowFieldName } from './activity-row.ts'

/** The encoding's version: the first element of every canonical row. */
export const CHAIN_FORMAT = 1

/** prev_hash of a chain's first row. */
export const GENESIS: Buffer = Buffer.alloc(32)

/**
 * A row as the chain sees it: the stored row's fields under their activity
 * names (schemas/activity-row.ts), absent ones null, the two times in whole
 * microseconds (what timestamptz keeps).
 */
export type ChainValues = { [K in RowFieldName]: K extends 'timestamp' | 'received_at' ? bigint : unknown }

/**
 * The fields format 1 covers, in its order. Spelled out, not read from
 * ACTIVITY_ROW at run time, because a chain must verify forever: a field
 * added to the row fails the check below until a new format says how.
 */
const FORMAT_1 = ['id', 'timestamp', 'received_at', 'source', 'action', 'category', 'severity', 'status', 'entity_type', 'entity_id', 'actor_id', 'tenant_id', 'service', 'trace_id', 'span_id', 'correlation_id', 'duration_ms', 'details', 'ip', 'user_agent', 'attributes'] as const
if (FORMAT_1.join() !== ACTIVITY_ROW.map((f) => f.name).join()) throw new Error('audit_log\'s row changed: the hash chain needs a new format (schemas/audit-chain.ts, docs/audit-integrity.md)')
const KIND = new Map<string, FieldKind>(ACTIVITY_ROW.map((f) => [f.name, f.kind]))

/** The chain a row belongs to: its tenant, or '' for rows without one. */
export function chainOf(tenantId: string | null | undefined): string {
  return tenantId ?? ''
}

/**
 * JSON with every object's keys sorted (by UTF-16 code units, JavaScript's
 * default order) and no whitespace; numbers, strings and escapes as
 * JSON.stringify writes them. For the values a row holds this is RFC 8785
 * (JCS). jsonb reorders keys and normalizes numbers, so both sides encode
 * the parsed value, never the stored text.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value)
    if (text === undefined) throw new TypeError(`not a JSON value: ${typeof value}`)
    return text
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`
  const entries = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
  return `{${entries.join(',')}}`
}

/**
 * An address as both sides write it whatever the input's spelling: IPv6 in
 * RFC 5952's form (lower case, the longest zero run compressed), as the
 * WHATWG URL parser prints it; IPv4 as given (PostgreSQL takes only the
 * dotted quad).
 */
export function canonicalIp(ip: string | null | undefined): string | null {
  if (ip === null || ip === undefined) return null
  return isIPv6(ip) ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip
}

/** A field's value in the canonical array, by its kind. */
function canonicalField(kind: FieldKind, v: unknown): unknown {
  if (v === undefined || v === null) return kind === 'map' ? {} : null
  switch (kind) {
    case 'uuid':
      return String(v).toLowerCase()
    case 'time':
      return (v as bigint).toString()
    case 'ip':
      return canonicalIp(String(v))
    default:
      return v
  }
}

/** The bytes a row's hash covers: the UTF-8 of a canonical JSON array [format, chain, seq, ...the row's fields]. */
export function canonicalRow(chain: string, seq: bigint, row: ChainValues): Buffer {
  const fields: unknown[] = [CHAIN_FORMAT, chain, seq.toString()]
  for (const name of FORMAT_1) fields.push(canonicalField(KIND.get(name)!, row[name]))
  return Buffer.from(canonicalJson(fields), 'utf8')
}

/** SHA-256(prev_hash || canonical(row)). */
export function linkHash(prev: Buffer, chain: string, seq: bigint, row: ChainValues): Buffer {
  return createHash('sha256').update(prev).update(canonicalRow(chain, seq, row)).digest()
}

/** An activity as the chain sees it once stored (its milliseconds as microseconds). */
export function chainValuesOf(a: Activity): ChainValues {
  return { ...a, timestamp: BigInt(Math.trunc(a.timestamp)) * 1000n, received_at: BigInt(Math.trunc(a.received_at)) * 1000n } as ChainValues
}
