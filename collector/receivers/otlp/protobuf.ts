/**
 * OTLP trace protobuf, read straight into SpanRecords, and the two small
 * messages the receiver writes back. Hand-written rather than generated:
 * the receiver needs six messages of opentelemetry-proto, and a reader that
 * skips what it does not use (events, links, scopes) decodes a span without
 * building objects it would throw away. Field numbers are from
 * opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto.
 */
import type { SpanKindName, SpanRecord } from '../../../schemas/span-activity.ts'
import { MAX_DEPTH } from '../../../schemas/storable.ts'

/** A request that is not a well-formed OTLP message: the whole request is refused with 400. */
export class OtlpDecodeError extends Error {}

/** A span whose attribute values nest deeper than an activity may: that span is invalid, the rest of the request is not. */
export class OtlpNestingError extends OtlpDecodeError {
  constructor() {
    super(`an attribute value is nested more than ${MAX_DEPTH} levels deep`)
  }
}

/** `into[key] = value` as an own property, whatever the key: `__proto__` would otherwise set the prototype. */
export function setAttribute(into: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true })
}

/** Spans decoded from one request; `invalid` are the ones that cannot be used (their index and why). */
export interface DecodedSpans {
  spans: SpanRecord[]
  invalid: { index: number; message: string }[]
}

const KINDS: readonly SpanKindName[] = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer']
const STATUS: readonly SpanRecord['status'][] = ['unset', 'ok', 'error']

const utf8 = new TextDecoder('utf-8', { fatal: true })

class Reader {
  pos: number
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start
  }

  get done(): boolean {
    return this.pos >= this.end
  }

  /** A varint as a number; exact up to 2^53, which tags, lengths and enums never pass. */
  varint(): number {
    let result = 0
    let shift = 1
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new OtlpDecodeError('truncated varint')
      const byte = this.buf[this.pos++]!
      result += (byte & 0x7f) * shift
      if (byte < 0x80) return result
      shift *= 128
    }
    throw new OtlpDecodeError('varint longer than 10 bytes')
  }

  /** An int64 varint, two's complement: a number when it is safe, else a bigint. */
  int64(): number | bigint {
    let value = 0n
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) throw new OtlpDecodeError('truncated varint')
      const byte = this.buf[this.pos++]!
      value |= BigInt(byte & 0x7f) << shift
      if (byte < 0x80) {
        const signed = BigInt.asIntN(64, value)
        return signed >= BigInt(Number.MIN_SAFE_INTEGER) && signed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(signed) : signed
      }
    }
    throw new OtlpDecodeError('varint longer than 10 bytes')
  }

  fixed64(): bigint {
    return this.view().getBigUint64(this.take(8), true)
  }

  double(): number {
    return this.view().getFloat64(this.take(8), true)
  }

  /** The bounds of a length-delimited field, consumed. */
  bytes(): [start: number, end: number] {
    const length = this.varint()
    const start = this.take(length)
    return [start, start + length]
  }

  string(): string {
    const [start, end] = this.bytes()
    try {
      return utf8.decode(this.buf.subarray(start, end))
    } catch {
      throw new OtlpDecodeError('a string field is not valid UTF-8')
    }
  }

  hex(): string {
    const [start, end] = this.bytes()
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + start, end - start).toString('hex')
  }

  sub(): Reader {
    const [start, end] = this.bytes()
    return new Reader(this.buf, start, end)
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0: this.varint(); return
      case 1: this.take(8); return
      case 2: this.bytes(); return
      case 5: this.take(4); return
      default: throw new OtlpDecodeError(`unsupported wire type ${wireType}`)
    }
  }

  private take(n: number): number {
    const start = this.pos
    if (start + n > this.end) throw new OtlpDecodeError('field runs past the end of its message')
    this.pos += n
    return start
  }

  private view(): DataView {
    return new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
  }
}

/** Decodes an ExportTraceServiceRequest. Throws OtlpDecodeError on a malformed message. */
export function decodeTraceRequest(buf: Uint8Array): DecodedSpans {
  const out: DecodedSpans = { spans: [], invalid: [] }
  const r = new Reader(buf)
  while (!r.done) {
    const tag = r.varint()
    if (tag >>> 3 === 1 && (tag & 7) === 2) resourceSpans(r.sub(), out)
    else r.skip(tag & 7)
  }
  return out
}

function resourceSpans(r: Reader, out: DecodedSpans): void {
  let resource: Record<string, unknown> = {}
  const scopes: Reader[] = []
  while (!r.done) {
    const tag = r.varint()
    const field = tag >>> 3
    if (field === 1 && (tag & 7) === 2) resource = resourceAttributes(r.sub())
    // The resource may follow its scopes on the wire: read them afterwards.
    else if (field === 2 && (tag & 7) === 2) scopes.push(r.sub())
    else r.skip(tag & 7)
  }
  for (const scope of scopes) {
    while (!scope.done) {
      const tag = scope.varint()
      if (tag >>> 3 === 2 && (tag & 7) === 2) span(scope.sub(), resource as SpanRecord['resource'], out)
      else scope.skip(tag & 7)
    }
  }
}

function resourceAttributes(r: Reader): Record<string, unknown> {
  const attributes: Record<string, unknown> = {}
  while (!r.done) {
    const tag = r.varint()
    if (tag >>> 3 === 1 && (tag & 7) === 2) keyValue(r.sub(), attributes)
    else r.skip(tag & 7)
  }
  return attributes
}

function span(r: Reader, resource: SpanRecord['resource'], out: DecodedSpans): void {
  const index = out.spans.length + out.invalid.length
  let traceId = ''
  let spanId = ''
  let name = ''
  let kind = 0
  let start = 0n
  let end = 0n
  let status = 0
  let statusMessage: string | undefined
  const attributes: Record<string, unknown> = {}
  while (!r.done) {
    const tag = r.varint()
    const wire = tag & 7
    switch (tag >>> 3) {
      case 1: traceId = r.hex(); break
      case 2: spanId = r.hex(); break
      case 5: name = r.string(); break
      case 6: kind = r.varint(); break
      case 7: start = wire === 1 ? r.fixed64() : BigInt(r.varint()); break
      case 8: end = wire === 1 ? r.fixed64() : BigInt(r.varint()); break
      case 9:
        try {
          keyValue(r.sub(), attributes)
        } catch (err) {
          if (!(err instanceof OtlpNestingError)) throw err
          out.invalid.push({ index, message: err.message })
          return
        }
        break
      case 15: {
        const s = r.sub()
        while (!s.done) {
          const t = s.varint()
          if (t >>> 3 === 2 && (t & 7) === 2) statusMessage = s.string()
          else if (t >>> 3 === 3 && (t & 7) === 0) status = s.varint()
          else s.skip(t & 7)
        }
        break
      }
      default: r.skip(wire)
    }
  }
  const problem = spanProblem(traceId, spanId)
  if (problem) {
    out.invalid.push({ index, message: problem })
    return
  }
  out.spans.push({
    name,
    kind: KINDS[kind] ?? 'unspecified',
    traceId,
    spanId,
    startTimeMs: nanosToMs(start),
    durationMs: end > start ? nanosToMs(end - start) : 0,
    attributes: attributes as SpanRecord['attributes'],
    status: STATUS[status] ?? 'unset',
    ...(statusMessage && { statusMessage }),
    resource,
  })
}

function keyValue(r: Reader, into: Record<string, unknown>, depth = 1): void {
  let key = ''
  let value: unknown
  while (!r.done) {
    const tag = r.varint()
    if (tag >>> 3 === 1 && (tag & 7) === 2) key = r.string()
    else if (tag >>> 3 === 2 && (tag & 7) === 2) value = anyValue(r.sub(), depth)
    else r.skip(tag & 7)
  }
  if (key !== '') setAttribute(into, key, value)
}

/** `depth` counts nesting so that no message can recurse without bound (each level is only a few bytes on the wire). */
function anyValue(r: Reader, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new OtlpNestingError()
  let value: unknown
  while (!r.done) {
    const tag = r.varint()
    switch (tag >>> 3) {
      case 1: value = r.string(); break
      case 2: value = r.varint() !== 0; break
      case 3: value = r.int64(); break
      case 4: value = r.double(); break
      case 5: value = repeatedValues(r.sub(), (s) => anyValue(s.sub(), depth + 1)); break
      case 6: {
        const kv: Record<string, unknown> = {}
        repeatedValues(r.sub(), (s) => keyValue(s.sub(), kv, depth + 1))
        value = kv
        break
      }
      case 7: value = r.hex(); break
      default: r.skip(tag & 7)
    }
  }
  return value
}

/** ArrayValue and KeyValueList both hold `repeated ... values = 1`. */
function repeatedValues<T>(r: Reader, read: (r: Reader) => T): T[] {
  const values: T[] = []
  while (!r.done) {
    const tag = r.varint()
    if (tag >>> 3 === 1 && (tag & 7) === 2) values.push(read(r))
    else r.skip(tag & 7)
  }
  return values
}

export function spanProblem(traceId: string, spanId: string): string | undefined {
  if (!/^[0-9a-f]{32}$/.test(traceId) || /^0+$/.test(traceId)) return 'trace_id must be 16 bytes, not all zero'
  if (!/^[0-9a-f]{16}$/.test(spanId) || /^0+$/.test(spanId)) return 'span_id must be 8 bytes, not all zero'
  return undefined
}

export function nanosToMs(nanos: bigint): number {
  return Number(nanos / 1000n) / 1000
}

// --- writing: ExportTraceServiceResponse and google.rpc.Status ---

function varintBytes(n: number): number[] {
  const out: number[] = []
  while (n > 127) {
    out.push((n % 128) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}

function lengthDelimited(field: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...varintBytes(body.length)]), body])
}

/** ExportTraceServiceResponse; empty when every span was accepted, as the spec asks. */
export function encodeTraceResponse(rejected: number, errorMessage: string): Buffer {
  if (rejected === 0 && errorMessage === '') return Buffer.alloc(0)
  const partial = Buffer.concat([
    Buffer.from([1 << 3, ...varintBytes(rejected)]),
    lengthDelimited(2, Buffer.from(errorMessage, 'utf8')),
  ])
  return lengthDelimited(1, partial)
}

/** google.rpc.Status { code, message }: the OTLP/HTTP error body for protobuf clients. */
export function encodeRpcStatus(code: number, message: string): Buffer {
  return Buffer.concat([Buffer.from([1 << 3, ...varintBytes(code)]), lengthDelimited(2, Buffer.from(message, 'utf8'))])
}
