/**
 * An OpenTelemetry SpanProcessor that turns ended spans into activities with
 * the collector's own mapping (schemas/span-activity.ts) and queues them on
 * the activity client. Add it beside any exporter: it does not change what
 * else the SDK exports.
 *
 * onStart stamps the activity context (actor, tenant, correlation id) on the
 * span, so the activity of a database span run inside an authenticated
 * request names that request's user.
 */
import { SpanKind, diag, type Context } from '@opentelemetry/api'
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { ActivityInputType } from '../schemas/activity-input.ts'
import { mayBeActivity, spanToActivities, type SpanKindName, type SpanRecord } from '../schemas/span-activity.ts'
import type { ActivityClient } from './activity-client.ts'
import { contextAttributes, currentActivityContext, takeTraceContext } from './activity-context.ts'
import { getActivityClient } from './logging-api.ts'
import { spanRows } from './pg-row-hooks.ts'
import { uuidv7 } from '../schemas/uuidv7.ts'

export interface ActivitySpanProcessorOptions {
  /** Where activities go; the logging API's client when absent. */
  client?: ActivityClient
  /** Spans for which it returns false are not considered at all. */
  filter?: (span: ReadableSpan) => boolean
  /**
   * Decides the activity of a span: given the default mapping (undefined when
   * the span is not an activity by the built-in rules), return it, a changed
   * or new activity, or undefined to skip the span. A write that lists its
   * rows maps to one activity per row: the hook is called for each.
   */
  map?: (span: ReadableSpan, mapped: ActivityInputType | undefined) => ActivityInputType | undefined
}

const KIND: Record<SpanKind, SpanKindName> = {
  [SpanKind.INTERNAL]: 'internal',
  [SpanKind.SERVER]: 'server',
  [SpanKind.CLIENT]: 'client',
  [SpanKind.PRODUCER]: 'producer',
  [SpanKind.CONSUMER]: 'consumer',
}
const STATUS = ['unset', 'ok', 'error'] as const

export class ActivitySpanProcessor implements SpanProcessor {
  private readonly options: ActivitySpanProcessorOptions

  constructor(options: ActivitySpanProcessorOptions = {}) {
    this.options = options
  }

  private get client(): ActivityClient {
    return this.options.client ?? getActivityClient()
  }

  onStart(span: Span, _parentContext: Context): void {
    const ctx = currentActivityContext()
    if (!ctx) return
    // A client span's statement is known at its start: a read, BEGIN or an outgoing call is never an activity, so it is not stamped.
    if (span.kind === SpanKind.CLIENT && !mayBeActivity('client', span.attributes)) return
    if (ctx.actorId) span.setAttribute('activity.actor_id', ctx.actorId)
    if (ctx.tenantId) span.setAttribute('activity.tenant_id', ctx.tenantId)
    if (ctx.correlationId) span.setAttribute('activity.correlation_id', ctx.correlationId)
  }

  onEnd(span: ReadableSpan): void {
    try {
      const kind = KIND[span.kind] ?? 'unspecified'
      // A server span started before its handler set who is calling: what the handler set comes from its trace.
      const late = kind === 'server' ? takeTraceContext(span.spanContext().traceId) : undefined
      // Reads, BEGIN, COMMIT, outgoing calls: skipped before anything is copied, unless a map hook wants every span.
      if (!this.options.map && !mayBeActivity(kind, span.attributes)) return
      if (this.options.filter && !this.options.filter(span)) return
      const record = toSpanRecord(span)
      if (late) record.attributes = { ...contextAttributes(late), ...record.attributes }
      const mapped = spanToActivities(record, spanRows.get(span), uuidv7)
      const map = this.options.map
      if (!map) for (const activity of mapped) this.client.log(activity)
      else for (const m of mapped.length ? mapped : [undefined]) {
        const activity = map(span, m)
        if (activity) this.client.log(activity)
      }
    } catch (err) {
      // A throwing user hook must not break the app's tracing.
      diag.error('actline ActivitySpanProcessor: could not map a span', err)
    }
  }

  forceFlush(): Promise<void> {
    return this.client.forceFlush()
  }

  shutdown(): Promise<void> {
    return this.client.shutdown()
  }
}

export function toSpanRecord(span: ReadableSpan): SpanRecord {
  const ctx = span.spanContext()
  return {
    name: span.name,
    kind: KIND[span.kind] ?? 'unspecified',
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    startTimeMs: span.startTime[0] * 1000 + span.startTime[1] / 1e6,
    durationMs: span.duration[0] * 1000 + span.duration[1] / 1e6,
    attributes: span.attributes as SpanRecord['attributes'],
    status: STATUS[span.status.code] ?? 'unset',
    ...(span.status.message && { statusMessage: span.status.message }),
    resource: span.resource.attributes as SpanRecord['resource'],
  }
}
