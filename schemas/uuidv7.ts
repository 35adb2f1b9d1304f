/**
 * UUIDv7 (RFC 9562): 48-bit millisecond time, version 7, a 12-bit sequence,
 * variant, 62 random bits. Time-ordered, so ids sort by creation and carry
 * their timestamp; monotonic within this process.
 *
 * Written here rather than taken from a package because an id is minted on
 * the app's hot path (every logUserAction) and again for every event that
 * arrives without one. Building the text with string concatenation leaves a
 * tree of ~36 string pieces, about 1 KB per id while it is queued; writing
 * the hex into a byte buffer and slicing one flat string out costs ~60 bytes
 * and a fraction of the time (bench:overhead measures both paths).
 */

import { createHash } from 'node:crypto'

const HEX = new Uint8Array(512)
for (let i = 0; i < 256; i++) {
  const h = i.toString(16).padStart(2, '0')
  HEX[i * 2] = h.charCodeAt(0)
  HEX[i * 2 + 1] = h.charCodeAt(1)
}

// Random bytes drawn 16 KiB at a time: the per-call cost of crypto is in the call, not the bytes.
const random = new Uint8Array(16 * 1024)
let drawn = random.length

function randomByte(): number {
  if (drawn === random.length) {
    crypto.getRandomValues(random)
    drawn = 0
  }
  return random[drawn++]!
}

const text = Buffer.alloc(36, '-'.charCodeAt(0))
let lastMs = -1
let sequence = 0

function put(pos: number, byte: number): void {
  text[pos] = HEX[byte * 2]!
  text[pos + 1] = HEX[byte * 2 + 1]!
}

/** A new UUIDv7 as lowercase text. */
export function uuidv7(): string {
  let ms = Date.now()
  if (ms > lastMs) {
    lastMs = ms
    // A random start in the lower half leaves room to count up within the millisecond.
    sequence = ((randomByte() << 8) | randomByte()) & 0x7ff
  } else if (++sequence > 0xfff) {
    // 2,048+ ids in one millisecond: borrow the next one, as RFC 9562 allows.
    ms = ++lastMs
    sequence = 0
  } else {
    ms = lastMs
  }
  // 48-bit time: the top 16 bits, then the low 32.
  const high = Math.floor(ms / 0x100000000)
  const low = ms >>> 0
  put(0, (high >>> 8) & 0xff)
  put(2, high & 0xff)
  put(4, low >>> 24)
  put(6, (low >>> 16) & 0xff)
  put(9, (low >>> 8) & 0xff)
  put(11, low & 0xff)
  put(14, 0x70 | (sequence >>> 8))
  put(16, sequence & 0xff)
  put(19, 0x80 | (randomByte() & 0x3f))
  put(21, randomByte())
  for (let pos = 24; pos < 36; pos += 2) put(pos, randomByte())
  // latin1Slice: toString('latin1') without its argument checks, a third of this function's time.
  return (text as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(0, 36)
}

/**
 * A UUIDv7 made from what it names instead of from chance: its clock is the
 * event's own time (time-ordered in both stores, like the SDK's ids) and its
 * other 74 bits a SHA-256 of `parts`. The same thing gives the same id on
 * every read of it, so a re-read (a backfill run again, a replication stream
 * resumed after a crash) is a retry the collector and the stores recognise,
 * not a second event.
 */
export function stableUuidv7(ms: number, ...parts: readonly string[]): string {
  const h = createHash('sha256').update(parts.join('\0')).digest()
  const b = Buffer.alloc(16)
  b.writeUIntBE(Math.max(0, Math.min(Math.floor(ms), 2 ** 48 - 1)), 0, 6)
  b[6] = 0x70 | (h[0]! & 0x0f)
  b[7] = h[1]!
  b[8] = 0x80 | (h[2]! & 0x3f)
  h.copy(b, 9, 3, 10)
  const x = b.toString('hex')
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`
}

/** `bytes` random bytes as lowercase hex, from the same pool: a trace id (16) or a span id (8). */
export function randomHex(bytes: number): string {
  const out = Buffer.allocUnsafe(bytes * 2)
  for (let i = 0; i < bytes; i++) {
    const b = randomByte()
    out[i * 2] = HEX[b * 2]!
    out[i * 2 + 1] = HEX[b * 2 + 1]!
  }
  return (out as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(0, bytes * 2)
}
