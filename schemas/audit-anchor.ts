/**
 * Anchors: every chain's head (sequence, hash, time) written outside the
 * database, optionally signed with Ed25519. A chain verifies against itself
 * and the head the writer keeps beside it; someone who can rewrite both
 * (remove a tail, rebuild a chain) is caught only by a head kept elsewhere:
 * `actline audit verify --anchor FILE`. docs/audit-integrity.md, "Anchors".
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { z } from 'zod'
import { jsonbText } from './audit-chain.ts'
import type { ChainHead } from './audit-verify.ts'
import type { RetentionFilter, StoredHead } from './audit-chain-store.ts'

export const ANCHOR_FORMAT = 'actline.audit-anchor/1'

/** A key or anchor that cannot be used; its message says what to do and never holds key material. */
export class AnchorError extends Error {
  override name = 'AnchorError'
}

// DER prefixes that turn Ed25519's raw 32 bytes into PKCS#8 and SPKI (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

function rawOrPem(text: string, what: string): { pem: string } | { raw: Buffer } {
  const t = text.trim()
  if (t.startsWith('-----BEGIN')) return { pem: t }
  const raw = Buffer.from(t, 'base64')
  if (raw.length !== 32 || raw.toString('base64').replace(/=+$/, '') !== t.replace(/=+$/, '')) {
    throw new AnchorError(`${what} is neither PEM nor 32 bytes of base64 (generate one: openssl genpkey -algorithm ed25519)`)
  }
  return { raw }
}

function ed25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new AnchorError(`${what} is a ${key.asymmetricKeyType} key; anchors are signed with Ed25519`)
  return key
}

/** A key from its text: PEM, or the raw 32 bytes (a private key's seed, a public key) wrapped in their DER prefix. */
function readKey(text: string, what: string, type: 'pkcs8' | 'spki', help: string): KeyObject {
  const k = rawOrPem(text, what)
  const create = (type === 'pkcs8' ? createPrivateKey : createPublicKey) as (input: string | { key: Buffer; format: 'der'; type: 'pkcs8' | 'spki' }) => KeyObject
  try {
    return ed25519('pem' in k ? create(k.pem) : create({ key: Buffer.concat([type === 'pkcs8' ? PKCS8_PREFIX : SPKI_PREFIX, k.raw]), format: 'der', type }), what)
  } catch (err) {
    if (err instanceof AnchorError) throw err
    throw new AnchorError(`${what} is not a readable ${help}`)
  }
}

/** audit.signing_key as a private key. */
export function signingKey(text: string): KeyObject {
  return readKey(text, 'audit.signing_key', 'pkcs8', 'private key (PEM PKCS#8, or the 32-byte seed in base64)')
}

/** audit.public_key (or a --public-key file's text) as a public key. */
export function publicKey(text: string): KeyObject {
  return readKey(text, 'the public key', 'spki', 'public key (PEM SPKI, or the 32 raw bytes in base64)')
}

/** The key signatures must verify with: audit.public_key, else the one signing_key gives. */
export function trustedKey(audit: { signing_key?: string | undefined; public_key?: string | undefined }): KeyObject | undefined {
  if (audit.public_key) return publicKey(audit.public_key)
  return audit.signing_key ? createPublicKey(signingKey(audit.signing_key)) : undefined
}

/** A public key as the 32 raw bytes in base64, as anchors carry it. */
export function rawPublicKey(key: KeyObject): string {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length).toString('base64')
}

/** Ed25519 over canonical JSON of `value`: the same bytes whoever re-encodes it. */
export function signValue(value: unknown, key: KeyObject): { algorithm: 'Ed25519'; public_key: string; value: string } {
  return { algorithm: 'Ed25519', public_key: rawPublicKey(createPublicKey(key)), value: sign(null, Buffer.from(jsonbText(value)), key).toString('base64') }
}

export function signatureValid(value: unknown, signature: { value: string }, key: KeyObject): boolean {
  return verify(null, Buffer.from(jsonbText(value)), key, Buffer.from(signature.value, 'base64'))
}

const Signature = z.strictObject({ algorithm: z.literal('Ed25519'), public_key: z.string().max(64), value: z.string().max(128) })

// A forged or damaged file is refused whole: sequence numbers as decimal
// text (no float rounding), hashes as 64 hex digits, bounded sizes.
const AnchorFile = z.strictObject({
  format: z.literal(ANCHOR_FORMAT),
  created_at: z.iso.datetime(),
  heads: z
    .array(z.strictObject({ chain: z.string().max(10_000), seq: z.string().regex(/^[1-9]\d{0,18}$/), hash: z.string().regex(/^[0-9a-f]{64}$/), updated_at: z.iso.datetime() }))
    .max(1_000_000),
  signature: Signature.optional(),
})
export type AnchorFile = z.output<typeof AnchorFile>

/** The anchor of these heads, signed when a key is given. Chains with no row yet (sequence 0) are left out. */
export function makeAnchor(heads: readonly StoredHead[], key?: KeyObject, now = new Date()): AnchorFile {
  const body = {
    format: ANCHOR_FORMAT,
    created_at: now.toISOString(),
    heads: heads.filter((h) => h.seq > 0n).map((h) => ({ chain: h.chain, seq: h.seq.toString(), hash: h.hash.toString('hex'), updated_at: h.updated_at.toISOString() })),
  } as const
  return key ? { ...body, signature: signValue(body, key) } : body
}

export interface ReadAnchor {
  heads: ChainHead[]
  created_at: string
  /** `verified` with the trusted key; `unsigned`; `untrusted`: signed, but no key was given to check it against. */
  signature: 'verified' | 'unsigned' | 'untrusted'
}

/** An anchor file's heads; throws AnchorError when it is malformed or its signature does not verify with `trusted`. */
export function readAnchor(text: string, trusted?: KeyObject): ReadAnchor {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new AnchorError('the anchor file is not JSON')
  }
  const parsed = AnchorFile.safeParse(json)
  if (!parsed.success) throw new AnchorError(`the anchor file is not an ${ANCHOR_FORMAT} anchor: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'file'}: ${i.message}`).join('; ')}`)
  const { signature, ...body } = parsed.data
  let state: ReadAnchor['signature'] = 'unsigned'
  if (signature) {
    if (!trusted) state = 'untrusted'
    else if (!signatureValid(body, signature, trusted)) throw new AnchorError('the anchor\'s signature does not verify with the trusted public key: the file was altered, or signed by another key')
    else state = 'verified'
  } else if (trusted) throw new AnchorError('the anchor is unsigned, but a public key is configured: an unsigned anchor could have been written by anyone')
  return { heads: body.heads.map((h) => ({ chain: h.chain, seq: BigInt(h.seq), hash: Buffer.from(h.hash, 'hex') })), created_at: body.created_at, signature: state }
}

/** Believe a retention event's cuts only when it is signed with `key` (verify with a public key configured). */
export function retentionSigned(key: KeyObject): RetentionFilter {
  return (chain, details) => {
    const { signature, ...rest } = details
    const s = Signature.safeParse(signature)
    return s.success && signatureValid({ chain, ...rest }, s.data, key)
  }
}
