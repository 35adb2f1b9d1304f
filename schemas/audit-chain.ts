/**
 * The audit trail's hash chain (issue 17): what a row's link is made of, as
 * the writer (the PostgreSQL exporter) computes it. Verifiers compute the
 * same canonical text in SQL (audit-chain-store.ts); docs/audit-integrity.md
 * specifies it with test vectors, so another language can verify a chain.
 *
 * One chain per tenant; rows without a tenant form the chain ''. Each row
 * carries its chain, its sequence number in it (from 1) and
 * `hash = SHA-256(prev_hash || canonical(row))`, prev_hash being the row
 * before's hash (32 zero bytes before the first row).
 */
import crypto, { createHash } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'
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

/*
 * The canonical row is the text PostgreSQL's jsonb prints for an array of
 * the row's values (docs/audit-integrity.md), so the database can compute it
 * too: `verify` checks a chain in SQL at scan speed, and anyone can with
 * psql. This module writes the same text from the collector's values.
 */

/** A key's UTF-8 length, and whether it is ASCII (for which UTF-16 order is byte order). */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return -Buffer.byteLength(s, 'utf8')
  return s.length
}

/** jsonb's key order: shorter first (in UTF-8 bytes), then bytewise. */
function keyOrder(a: string, b: string): number {
  const la = utf8Length(a)
  const lb = utf8Length(b)
  if (Math.abs(la) !== Math.abs(lb)) return Math.abs(la) - Math.abs(lb)
  if (la >= 0 && lb >= 0) return a < b ? -1 : a > b ? 1 : 0
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

/**
 * A number as jsonb prints it: PostgreSQL's numeric reads the decimal text
 * JSON.stringify wrote and prints it without an exponent (1e+21 as
 * 1000000000000000000000, 1.5e-7 as 0.00000015).
 */
export function numericText(n: number): string {
  const s = String(n === 0 ? 0 : n)
  const e = s.indexOf('e')
  if (e < 0) return s
  const negative = s[0] === '-'
  const mantissa = s.slice(negative ? 1 : 0, e)
  const exponent = Number(s.slice(e + 1))
  const dot = mantissa.indexOf('.')
  const digits = dot < 0 ? mantissa : mantissa.slice(0, dot) + mantissa.slice(dot + 1)
  const point = (dot < 0 ? mantissa.length : dot) + exponent
  const plain = point <= 0 ? `0.${'0'.repeat(-point)}${digits}` : point >= digits.length ? digits + '0'.repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`
  return negative ? `-${plain}` : plain
}

/**
 * A JSON value as PostgreSQL's jsonb output writes it: keys in jsonb's
 * order, ", " between elements and ": " after keys, numbers as numeric
 * prints them, strings escaped as JSON.stringify does (which is also what
 * jsonb's escape_json does: \" \\ \b \f \n \r \t, other controls as \u00xx).
 */
export function jsonbText(value: unknown): string {
  if (value === null || value === undefined) return 'null'
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`not a JSON number: ${value}`)
      return numericText(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object': {
      if (Array.isArray(value)) {
        let out = '['
        for (let i = 0; i < value.length; i++) out += (i ? ', ' : '') + jsonbText(value[i])
        return `${out}]`
      }
      const o = value as Record<string, unknown>
      const keys = Object.keys(o)
      if (keys.length > 1) keys.sort(keyOrder)
      let out = '{'
      for (const k of keys) {
        const v = o[k]
        if (v === undefined) continue
        out += `${out.length > 1 ? ', ' : ''}${JSON.stringify(k)}: ${jsonbText(v)}`
      }
      return `${out}}`
    }
    default:
      throw new TypeError(`not a JSON value: ${typeof value}`)
  }
}

/** An address as its bytes in hex, as `substring(inet_send(ip) from 5)` gives them: 4 for IPv4, 16 for IPv6 (a whole address: its mask adds nothing; audit-chain-store.ts, ipSql). */
export function ipHex(ip: string): string {
  if (isIPv4(ip)) return ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('')
  if (!isIPv6(ip)) throw new TypeError(`not an IP address: ${ip}`)
  // The WHATWG URL parser writes the address as hex groups, an embedded IPv4 included; only :: is left to expand.
  const host = new URL(`http://[${ip}]/`).hostname.slice(1, -1)
  const [head = '', tail] = host.split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
  return groups.map((g) => g.padStart(4, '0')).join('')
}

const float = Buffer.alloc(8)

/** A field's value in the canonical array, by its kind. */
function canonicalField(kind: FieldKind, v: unknown): unknown {
  if (v === undefined || v === null) return kind === 'map' ? {} : null
  switch (kind) {
    case 'uuid':
      return String(v).toLowerCase()
    case 'time':
      return (v as bigint).toString()
    case 'optional-number':
      // The IEEE 754 bits, as float8send gives them: exact, and no float printing to agree on.
      float.writeDoubleBE((v as number) === 0 ? 0 : (v as number))
      return float.toString('hex')
    case 'ip':
      return ipHex(String(v))
    default:
      return v
  }
}

const FIELDS = FORMAT_1.map((name) => [name, KIND.get(name)!] as const)

/**
 * The canonical row as text: jsonb's text of [format, chain, seq, ...the
 * row's fields]. Written out field by field (the same text jsonbText gives
 * the array): this runs once per audited row on the ingest thread.
 */
export function canonicalText(chain: string, seq: bigint, row: ChainValues): string {
  return encode(chain, seq, row as Record<string, unknown>, (v) => String(v as bigint))
}

/** The canonical text of an activity as it will be stored: its millisecond times as microseconds. */
export function activityCanonicalText(chain: string, seq: bigint, a: Activity): string {
  return encode(chain, seq, a as unknown as Record<string, unknown>, (ms) => String(Math.trunc(ms as number) * 1000))
}

function encode(chain: string, seq: bigint, row: Record<string, unknown>, micros: (v: unknown) => string): string {
  let out = `[${CHAIN_FORMAT}, ${JSON.stringify(chain)}, "${seq}"`
  for (const [name, kind] of FIELDS) {
    const v = row[name]
    if (v === undefined || v === null) out += kind === 'map' ? ', {}' : ', null'
    else if (kind === 'text' || kind === 'optional-text') out += `, ${JSON.stringify(v)}`
    else if (kind === 'time') out += `, "${micros(v)}"`
    else out += `, ${jsonbText(canonicalField(kind, v))}`
  }
  return `${out}]`
}

/** The bytes a row's hash covers: the UTF-8 of canonicalText. */
export function canonicalRow(chain: string, seq: bigint, row: ChainValues): Buffer {
  return Buffer.from(canonicalText(chain, seq, row), 'utf8')
}

/** SHA-256(prev_hash || canonical(row)). */
export function linkHash(prev: Buffer, chain: string, seq: bigint, row: ChainValues): Buffer {
  return hashLink(prev, canonicalText(chain, seq, row))
}

// One-shot hashing over a reused buffer costs 1.5 µs a row against
// createHash's 2.1 (Node 20.12+ has crypto.hash).
const oneShot = (crypto as { hash?: (algorithm: string, data: Buffer, encoding: 'buffer') => Buffer }).hash
const scratch = Buffer.allocUnsafe(64 * 1024)

/** SHA-256(prev_hash || the UTF-8 of `canonical`): the link of a row whose canonical text is known. */
export function hashLink(prev: Buffer, canonical: string): Buffer {
  if (oneShot && canonical.length * 3 <= scratch.length - 32) {
    prev.copy(scratch, 0)
    const n = scratch.write(canonical, 32, 'utf8')
    return oneShot('sha256', scratch.subarray(0, 32 + n), 'buffer')
  }
  return createHash('sha256').update(prev).update(canonical, 'utf8').digest()
}

/** The link of an activity at `seq` after `prev`, as the writer computes it. */
export function activityLinkHash(prev: Buffer, chain: string, seq: bigint, a: Activity): Buffer {
  return hashLink(prev, activityCanonicalText(chain, seq, a))
}

/** An activity as the chain sees it once stored (its milliseconds as microseconds). */
export function chainValuesOf(a: Activity): ChainValues {
  return { ...a, timestamp: BigInt(Math.trunc(a.timestamp)) * 1000n, received_at: BigInt(Math.trunc(a.received_at)) * 1000n } as ChainValues
}
