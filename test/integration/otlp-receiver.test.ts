/**
 * POST /v1/traces with the stock OpenTelemetry exporters and serializers:
 * any OTel SDK can feed the collector. Everything is checked where it
 * lands (ClickHouse) or in the reply an OTLP client decodes.
 */
import { gzipSync } from 'node:zlib'
import { closedPort } from '../helpers/ports.ts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SpanKind, SpanStatusCode, type Attributes } from '@opentelemetry/api'
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanExporter,
} from '@opentelemetry/sdk-trace-base'
import { decodeTraceRequestJson } from '../../collector/receivers/otlp/json.ts'
import { decodeTraceRequest } from '../../collector/receivers/otlp/protobuf.ts'
import { toSpanRecord } from '../../instrumentation/activity-span-processor.ts'
import { eventually, post as postTo, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

const JSON_TYPE = { 'content-type': 'application/json' }
const PROTO_TYPE = { 'content-type': 'application/x-protobuf' }
const post = (url: string, body: string | Buffer, headers: Record<string, string> = JSON_TYPE) => postTo(url, body, headers, '/v1/traces')

interface SpanSpec {
  name: string
  kind?: SpanKind
  attributes?: Attributes
  error?: string
}

/** Real SDK spans, ended and handed to `exporter`; the provider is shut down unless `keep`. */
async function emit(exporter: SpanExporter, service: string, specs: SpanSpec[], keep = false): Promise<void> {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  })
  const tracer = provider.getTracer('otlp-receiver-test')
  for (const s of specs) {
    const span = tracer.startSpan(s.name, { kind: s.kind ?? SpanKind.INTERNAL, attributes: s.attributes })
    if (s.error) span.setStatus({ code: SpanStatusCode.ERROR, message: s.error })
    span.end()
  }
  await provider.forceFlush()
  if (!keep) await provider.shutdown()
}

async function finished(specs: SpanSpec[], service = 'codec'): Promise<ReadableSpan[]> {
  const memory = new InMemorySpanExporter()
  // Kept open: shutting down clears an InMemorySpanExporter.
  await emit(memory, service, specs, true)
  const spans = memory.getFinishedSpans()
  expect(spans).toHaveLength(specs.length)
  return spans
}

const mixed: SpanSpec[] = [
  { name: 'pay', attributes: { 'activity.action': 'invoice.paid', 'activity.entity_type': 'invoice', 'enduser.id': 'u-9', amount: 12.5, tags: ['a', 'b'] } },
  { name: 'GET /health', kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.route': '/health', 'http.response.status_code': 503 } },
  { name: 'UPDATE', kind: SpanKind.CLIENT, attributes: { 'db.system.name': 'postgresql', 'db.query.text': 'UPDATE accounts SET balance = $1' } },
  { name: 'SELECT', kind: SpanKind.CLIENT, attributes: { 'db.system.name': 'postgresql', 'db.query.text': 'SELECT 1' } },
  { name: 'compute', attributes: { big: 2 ** 60, negative: -3, flag: true } },
]

describe('OTLP decoding', () => {
  it('reads protobuf and JSON into the same spans the SDK holds in memory', async () => {
    const spans = await finished(mixed)
    const expected = spans.map(toSpanRecord)
    const fromProto = decodeTraceRequest(ProtobufTraceSerializer.serializeRequest(spans)!)
    const fromJson = decodeTraceRequestJson(JSON.parse(Buffer.from(JsonTraceSerializer.serializeRequest(spans)!).toString()))
    for (const decoded of [fromProto, fromJson]) {
      expect(decoded.invalid).toEqual([])
      expect(decoded.spans).toHaveLength(expected.length)
      decoded.spans.forEach((s, i) => {
        const want = expected[i]!
        expect(s).toMatchObject({ name: want.name, kind: want.kind, traceId: want.traceId, spanId: want.spanId, status: want.status })
        expect(s.startTimeMs).toBeCloseTo(want.startTimeMs, 2) // microseconds are kept
        expect(s.durationMs).toBeCloseTo(want.durationMs, 2)
        expect(s.resource['service.name']).toBe('codec')
        for (const [key, value] of Object.entries(want.attributes)) {
          expect(typeof s.attributes[key] === 'bigint' ? Number(s.attributes[key]) : s.attributes[key]).toEqual(value)
        }
      })
    }
  })
})

describe('POST /v1/traces', () => {
  const dir = tempDir()
  let run: RunningCollector

  beforeAll(async () => {
    run = await startCollector(testConfig(dir.path))
  })

  afterAll(async () => {
    await run?.collector.shutdown()
    dir.remove()
  })

  async function landed(service: string, count: number) {
    const { clickhouse } = storesOf(run.collector)
    const query = async () =>
      (await (
        await clickhouse.query({
          query: 'SELECT action, source, status, severity, entity_type, actor_id, trace_id, attributes FROM actline.activities WHERE service = {s:String} ORDER BY action',
          query_params: { s: service },
          format: 'JSONEachRow',
        })
      ).json()) as any[]
    await eventually(`${count} activities from ${service}`, async () => (await query()).length >= count)
    return query()
  }

  it.each([
    ['exporter-trace-otlp-proto', (url: string) => new ProtoExporter({ url: `${url}/v1/traces` })],
    ['exporter-trace-otlp-http (JSON)', (url: string) => new JsonExporter({ url: `${url}/v1/traces` })],
  ])('stores the activities of spans sent by the official %s', async (name, make) => {
    const service = `svc-${name.replace(/\W+/g, '-')}`
    await emit(make(run.url), service, mixed)
    const rows = await landed(service, 3)
    expect(rows.map((r) => r.action)).toEqual(['api.get', 'db.update', 'invoice.paid'])
    expect(rows[0]).toMatchObject({ source: 'system', status: 'failure', severity: 'warning' })
    expect(rows[1]).toMatchObject({ source: 'database', entity_type: 'accounts' })
    expect(rows[2]).toMatchObject({ source: 'user', actor_id: 'u-9', entity_type: 'invoice' })
    expect(rows[2].attributes).toMatchObject({ amount: '12.5', tags: '["a","b"]' })
    expect(rows[2].trace_id).toMatch(/^[0-9a-f]{32}$/)
  })

  it('answers partial_success in protobuf, counting unmapped and invalid spans', async () => {
    const spans = await finished([
      { name: 'ok', attributes: { 'activity.action': 'report.run' } },
      { name: 'bad', attributes: { 'activity.action': 'not an action!' } },
      { name: 'internal' },
    ], 'partial-proto')
    const res = await post(run.url, Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!), PROTO_TYPE)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^application\/x-protobuf/)
    const reply = ProtobufTraceSerializer.deserializeResponse(new Uint8Array(res.raw))
    expect(Number(reply.partialSuccess?.rejectedSpans)).toBe(2)
    expect(reply.partialSuccess?.errorMessage).toMatch(/1 span\(s\) invalid \(first, span 1: action: action must be dot-separated/)
    expect(reply.partialSuccess?.errorMessage).toMatch(/1 span\(s\) carry no activity/)
    expect((await landed('partial-proto', 1)).map((r) => r.action)).toEqual(['report.run'])
    const metrics = await (await fetch(`${run.url}/metrics`)).text()
    expect(metrics).toMatch(/actline_otlp_spans_total\{outcome="unmapped"\} [1-9]/)
    expect(metrics).toMatch(/actline_otlp_spans_total\{outcome="invalid"\} [1-9]/)
  })

  it('answers an empty response when every span was taken, and accepts gzip', async () => {
    const spans = await finished([{ name: 'ok', attributes: { 'activity.action': 'report.run' } }], 'gzip-proto')
    const body = gzipSync(ProtobufTraceSerializer.serializeRequest(spans)!)
    const res = await post(run.url, body, { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' })
    expect(res.status).toBe(200)
    expect(res.raw.length).toBe(0)
    await landed('gzip-proto', 1)
  })

  it('answers partial_success in JSON for a JSON request, and rejects a span with a bad trace id', async () => {
    const spans = await finished([{ name: 'ok', attributes: { 'activity.action': 'report.run' } }], 'partial-json')
    const request = JSON.parse(Buffer.from(JsonTraceSerializer.serializeRequest(spans)!).toString())
    const good = request.resourceSpans[0].scopeSpans[0].spans[0]
    request.resourceSpans[0].scopeSpans[0].spans.push({ ...good, traceId: 'xyz' })
    const res = await post(run.url, JSON.stringify(request))
    expect(res.status).toBe(200)
    expect(res.json).toEqual({ partialSuccess: { rejectedSpans: 1, errorMessage: expect.stringMatching(/span 1: trace_id must be 16 bytes/) } })
  })

  it('refuses a malformed body with 400: google.rpc.Status for protobuf, the JSON error otherwise', async () => {
    const proto = await post(run.url, Buffer.from([0x0a, 0xff, 0xff, 0x01]), PROTO_TYPE)
    expect(proto.status).toBe(400)
    expect(proto.headers.get('content-type')).toMatch(/^application\/x-protobuf/)
    // Status { code = 3 (INVALID_ARGUMENT), message = ... }
    expect(proto.raw[0]).toBe(0x08)
    expect(proto.raw[1]).toBe(3)
    expect(proto.raw.subarray(4).toString()).toMatch(/not a valid OTLP ExportTraceServiceRequest/)

    const json = await post(run.url, JSON.stringify({ resourceSpans: 'nope' }))
    expect(json.status).toBe(400)
    expect(json.json).toMatchObject({ error: 'ACT_ERR_MALFORMED_BODY', message: expect.stringMatching(/resourceSpans must be an array/) })

    const type = await post(run.url, 'x', { 'content-type': 'text/plain' })
    expect(type.status).toBe(415)
    expect(type.json.details.supported).toEqual(['application/x-protobuf', 'application/json'])
  })
})

describe('POST /v1/traces under backpressure', () => {
  const dir = tempDir()
  let run: RunningCollector

  beforeAll(async () => {
    // A ClickHouse that is not there (a real closed port) never lets its
    // cursor advance, so a small log fills and stays full.
    const port = await closedPort()
    run = await startCollector(testConfig(dir.path, { wal: { max_bytes: 4096 }, exporters: { clickhouse: { url: `http://127.0.0.1:${port}` } } }))
    for (let i = 0; i < 50; i++) {
      const res = await postTo(run.url, JSON.stringify(Array.from({ length: 20 }, () => ({ action: 'fill.log', source: 'system' }))))
      if (res.status === 429) return
    }
    throw new Error('the log never filled')
  })

  afterAll(async () => {
    await run?.collector.shutdown()
    dir.remove()
  })

  it('answers 503 with Retry-After, and a retryable google.rpc.Status', async () => {
    const spans = await finished([{ name: 'ok', attributes: { 'activity.action': 'report.run' } }])
    const res = await post(run.url, Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!), PROTO_TYPE)
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('1')
    expect([...res.raw.subarray(0, 2)]).toEqual([0x08, 14]) // UNAVAILABLE
  })
})
