/**
 * OTLP/JSON traces into SpanRecords. The OTLP/JSON rules that differ from
 * plain protobuf JSON: trace and span ids are hex (not base64), enums are
 * integers, 64-bit integers may come as strings, and unknown fields are
 * ignored. Keys are lowerCamelCase; the proto names (snake_case) are accepted
 * too, as protobuf JSON parsers do.
 */
import type { SpanKindName, SpanRecord } from '../../../schemas/span-activity.ts'
import { OtlpDecodeError, OtlpNestingError, nanosToMs, setAttribute, spanProblem, type DecodedSpans } from './protobuf.ts'
import { MAX_DEPTH } from '../../../schemas/storable.ts'

const KINDS: Record<string, SpanKindName> = {
  0: 'unspecified', 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer',
  SPAN_KIND_UNSPECIFIED: 'unspecified', SPAN_KIND_INTERNAL: 'internal', SPAN_KIND_SERVER: 'server',
  SPAN_KIND_CLIENT: 'client', SPAN_KIND_PRODUCER: 'producer', SPAN_KIND_CONSUMER: 'consumer',
}
const STATUS: Record<string, SpanRecord['status']> = {
  0: 'unset', 1: 'ok', 2: 'error', STATUS_CODE_UNSET: 'unset', STATUS_CODE_OK: 'ok', STATUS_CODE_ERROR: 'error',
}

type Json = Record<string, unknown>

export function decodeTraceRequestJson(body: unknown): DecodedSpans {
  if (!isObject(body)) throw new OtlpDecodeError('body must be a JSON object (ExportTraceServiceRequest)')
  const out: DecodedSpans = { spans: [], invalid: [] }
  for (const rs of list(body, 'resourceSpans', 'resource_spans')) {
    const resourceObj = rs['resource']
    const resource = isObject(resourceObj) ? attributes(resourceObj['attributes'], 'resource.attributes') : {}
    for (const ss of list(rs, 'scopeSpans', 'scope_spans')) {
      for (const raw of list(ss, 'spans', 'spans')) {
        const index = out.spans.length + out.invalid.length
        try {
          out.spans.push(span(raw, resource))
        } catch (err) {
          if (!(err instanceof OtlpDecodeError)) throw err
          out.invalid.push({ index, message: err.message })
        }
      }
    }
  }
  return out
}

function span(s: Json, resource: SpanRecord['resource']): SpanRecord {
  const traceId = typeof s['traceId'] === 'string' ? s['traceId'].toLowerCase() : ''
  const spanId = typeof s['spanId'] === 'string' ? s['spanId'].toLowerCase() : ''
  const problem = spanProblem(traceId, spanId)
  if (problem) throw new OtlpDecodeError(problem)
  const start = nanos(pick(s, 'startTimeUnixNano', 'start_time_unix_nano'), 'startTimeUnixNano')
  const end = nanos(pick(s, 'endTimeUnixNano', 'end_time_unix_nano'), 'endTimeUnixNano')
  const status = isObject(s['status']) ? s['status'] : {}
  const message = status['message']
  return {
    name: typeof s['name'] === 'string' ? s['name'] : '',
    kind: KINDS[String(s['kind'] ?? 0)] ?? 'unspecified',
    traceId,
    spanId,
    startTimeMs: nanosToMs(start),
    durationMs: end > start ? nanosToMs(end - start) : 0,
    attributes: attributes(s['attributes'], 'attributes'),
    status: STATUS[String(status['code'] ?? 0)] ?? 'unset',
    ...(typeof message === 'string' && message !== '' && { statusMessage: message }),
    resource,
  }
}

function attributes(value: unknown, where: string, depth = 1): Record<string, SpanRecord['attributes'][string]> {
  const out: Record<string, unknown> = {}
  if (value === undefined || value === null) return {}
  if (!Array.isArray(value)) throw new OtlpDecodeError(`${where} must be an array of {key, value}`)
  for (const kv of value) {
    if (isObject(kv) && typeof kv['key'] === 'string' && kv['key'] !== '') setAttribute(out, kv['key'], anyValue(kv['value'], depth))
  }
  return out as Record<string, SpanRecord['attributes'][string]>
}

function anyValue(v: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new OtlpNestingError()
  if (!isObject(v)) return undefined
  if ('stringValue' in v) return v['stringValue']
  if ('boolValue' in v) return v['boolValue']
  if ('intValue' in v) return integer(v['intValue'])
  if ('doubleValue' in v) return Number(v['doubleValue'])
  if ('bytesValue' in v) return typeof v['bytesValue'] === 'string' ? Buffer.from(v['bytesValue'], 'base64').toString('hex') : undefined
  if (isObject(v['arrayValue'])) return list(v['arrayValue'], 'values', 'values', true).map((x) => anyValue(x, depth + 1))
  if (isObject(v['kvlistValue'])) return attributes(v['kvlistValue']['values'], 'kvlistValue.values', depth + 1)
  return undefined
}

function integer(v: unknown): number | bigint | undefined {
  if (typeof v === 'number') return v
  if (typeof v === 'string' && /^-?\d+$/.test(v)) {
    const n = BigInt(v)
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
  }
  return undefined
}

function nanos(v: unknown, field: string): bigint {
  if (v === undefined) return 0n
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return BigInt(Math.round(v))
  if (typeof v === 'string' && /^\d+$/.test(v)) return BigInt(v)
  throw new OtlpDecodeError(`${field} must be a non-negative integer or a decimal string`)
}

function list(obj: Json, camel: string, snake: string, scalars = false): Json[] {
  const value = pick(obj, camel, snake)
  if (value === undefined || value === null) return []
  if (!Array.isArray(value)) throw new OtlpDecodeError(`${camel} must be an array`)
  return scalars ? (value as Json[]) : value.filter(isObject)
}

function pick(obj: Json, camel: string, snake: string): unknown {
  return obj[camel] ?? obj[snake]
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
