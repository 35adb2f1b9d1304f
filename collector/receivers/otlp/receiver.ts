/**
 * POST /v1/traces, OTLP/HTTP: any OpenTelemetry SDK, in any language, can
 * feed the collector with its stock OTLP exporter. Spans go through the same
 * span-to-activity mapping as the app-side ActivitySpanProcessor, then the
 * same validation and write-ahead log as /v1/activities.
 *
 * Per the OTLP/HTTP spec: protobuf or JSON, answered in the request's
 * encoding; gzip; 400 for a malformed message (not retryable); partial_success
 * counting the spans not taken; 503 with Retry-After under backpressure.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { OtlpReceiverConfig } from './config.ts'
import { parseActivity, type Activity } from '../../../schemas/activity.ts'
import { spanToActivities } from '../../../schemas/span-activity.ts'
import type { ReceiverOptions } from '../receiver-type.ts'
import { refuseWhenFull, store } from '../admission.ts'
import { decodeContentEncoding, parseJsonBody } from '../request-body.ts'
import { ActlineError } from '../../../schemas/errors.ts'
import { decodeTraceRequestJson } from './json.ts'
import { OtlpDecodeError, decodeTraceRequest, encodeRpcStatus, encodeTraceResponse, type DecodedSpans } from './protobuf.ts'

const PROTOBUF = 'application/x-protobuf'

function isProtobuf(request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').toLowerCase().startsWith(PROTOBUF)
}

/** The gRPC code an OTLP client expects beside each HTTP status. */
const RPC_CODE: Record<number, number> = { 400: 3, 401: 16, 403: 7, 404: 5, 413: 3, 415: 3, 429: 8, 500: 13, 503: 14 }

/** OTLP/HTTP: an error to a protobuf request is a google.rpc.Status; to a JSON one, the collector's JSON body. */
function rpcStatus(error: ActlineError, request: FastifyRequest): { type: string; body: Buffer } | undefined {
  if (!isProtobuf(request)) return undefined
  return { type: PROTOBUF, body: encodeRpcStatus(RPC_CODE[error.statusCode] ?? 2, error.message) }
}

export const otlpReceiver: FastifyPluginAsync<ReceiverOptions<OtlpReceiverConfig>> = async (app, { config, ingest, stats }) => {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(PROTOBUF, { parseAs: 'buffer', bodyLimit: config.max_body_bytes }, async (_req: unknown, body: Buffer) =>
    decodeOtlp(() => decodeTraceRequest(body)),
  )
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.max_body_bytes }, async (_req: unknown, body: Buffer) =>
    decodeOtlp(() => decodeTraceRequestJson(parseJsonBody(body))),
  )
  app.addHook('preParsing', decodeContentEncoding)

  app.post<{ Body: DecodedSpans }>(
    '/v1/traces',
    {
      bodyLimit: config.max_body_bytes,
      config: { scope: 'ingest', renderError: rpcStatus, receiver: { section: 'receivers.otlp', contentTypes: [PROTOBUF, 'application/json'] } },
      onRequest: refuseWhenFull(ingest, stats, 'ACT_ERR_OVERLOADED'),
    },
    async (request, reply) => {
      const decoded = request.body ?? { spans: [], invalid: [] }
      const receivedAt = Date.now()
      const accepted: Activity[] = []
      const invalid = [...decoded.invalid]
      let unmapped = 0
      decoded.spans.forEach((span, index) => {
        const mapped = spanToActivities(span)
        if (mapped.length === 0) return void unmapped++
        // A write may be several activities (one per row); a span is rejected once, with its first refusal.
        let refused: string | undefined
        for (const activity of mapped) {
          const result = parseActivity(activity, receivedAt)
          if (result.ok) accepted.push(result.activity)
          else refused ??= result.issues.map((i) => `${i.path || 'activity'}: ${i.message}`).join('; ')
        }
        if (refused !== undefined) invalid.push({ index, message: refused })
      })
      if (accepted.length > 0) await store(ingest, accepted, request.log)
      stats.accepted += accepted.length
      stats.rejected += invalid.length
      stats.spans.mapped += accepted.length
      stats.spans.unmapped += unmapped
      stats.spans.invalid += invalid.length
      const rejected = invalid.length + (config.report_unmapped ? unmapped : 0)
      const message = partialSuccessMessage(invalid, config.report_unmapped ? unmapped : 0)
      reply.code(200)
      if (isProtobuf(request)) return reply.type(PROTOBUF).send(encodeTraceResponse(rejected, message))
      return reply.type('application/json').send(rejected === 0 ? {} : { partialSuccess: { rejectedSpans: rejected, errorMessage: message } })
    },
  )
}

/** A message that is not well-formed OTLP is a 400 for the whole request; anything else is our bug. */
function decodeOtlp(decode: () => DecodedSpans): DecodedSpans {
  try {
    return decode()
  } catch (err) {
    if (!(err instanceof OtlpDecodeError || err instanceof RangeError)) throw err
    throw new ActlineError('ACT_ERR_MALFORMED_BODY', `body is not a valid OTLP ExportTraceServiceRequest: ${err.message}`)
  }
}

function partialSuccessMessage(invalid: { index: number; message: string }[], unmapped: number): string {
  const parts: string[] = []
  if (invalid.length > 0) {
    const first = invalid[0]!
    parts.push(`${invalid.length} span(s) invalid (first, span ${first.index}: ${first.message})`)
  }
  if (unmapped > 0) {
    parts.push(`${unmapped} span(s) carry no activity: only spans with activity.action, HTTP server spans and INSERT/UPDATE/DELETE database spans become activities`)
  }
  return parts.join('; ')
}

