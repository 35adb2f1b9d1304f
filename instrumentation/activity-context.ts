/**
 * Who is acting, for which tenant, under which correlation id: set once
 * where a request is authenticated, read by every activity logged beneath
 * it (so a database write's activity names the user whose request ran the
 * statement, which is what audit triggers read from a session variable).
 * AsyncLocalStorage, so it works with or without an OpenTelemetry SDK.
 *
 * A request the register hook sees runs inside a RequestScope: whatever the
 * handler sets (withActivityContext around part of it, setActivityContext in
 * an auth hook) is also written to the scope, so the request's own `api.*`
 * activity, built when the response finishes, names who called it.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { trace, isSpanContextValid } from '@opentelemetry/api'

export interface ActivityContext {
  actorId?: string
  tenantId?: string
  correlationId?: string
}

/** One HTTP request as the register hook follows it. */
export interface RequestScope {
  traceId: string
  spanId: string
  /** What the handler set while it ran: the last value of each wins. */
  context: ActivityContext
  /** The route template, when the framework says it (Fastify's diagnostics channel). */
  route?: string
}

const REQUEST = Symbol('actline.request')
type Store = ActivityContext & { [REQUEST]?: RequestScope }

const storage = new AsyncLocalStorage<Store>()

/**
 * Trace ids of requests traced by an OpenTelemetry SDK, to what their
 * handlers set: the SDK's HTTP server span starts before the handler, so
 * the span processor reads the actor for that span from here when it ends.
 * Bounded: a trace that never ends a server span must not hold memory.
 */
const byTrace = new Map<string, ActivityContext>()
const MAX_TRACES = 10_000

/** Runs fn with these values added to the current activity context. */
export function withActivityContext<T>(values: ActivityContext, fn: () => T): T {
  const current = storage.getStore()
  const request = current?.[REQUEST]
  if (request) assignDefined(request.context, values)
  else recordForTrace(values)
  // A copy, never the caller's object: setActivityContext writes into the store.
  return storage.run({ ...current, ...values }, fn)
}

/**
 * Sets these values for the rest of the current request (or the current
 * withActivityContext scope): for an authentication hook that cannot wrap
 * the handler, such as Fastify's `onRequest`. Returns false where there is
 * no scope to set them in (outside a request the register hook sees and
 * outside withActivityContext): wrap the work in withActivityContext there.
 */
export function setActivityContext(values: ActivityContext): boolean {
  const current = storage.getStore()
  if (!current) {
    recordForTrace(values)
    return false
  }
  assignDefined(current, values)
  const request = current[REQUEST]
  if (request) assignDefined(request.context, values)
  else recordForTrace(values)
  return true
}

export function currentActivityContext(): ActivityContext | undefined {
  return storage.getStore()
}

/** Runs fn as one request (the register hook's HTTP server hook). */
export function runInRequest<T>(scope: RequestScope, fn: () => T): T {
  return storage.run({ [REQUEST]: scope }, fn)
}

export function currentRequest(): RequestScope | undefined {
  return storage.getStore()?.[REQUEST]
}

/** What the handlers of this trace set, once: the span processor's lookup for a server span. */
export function takeTraceContext(traceId: string): ActivityContext | undefined {
  const found = byTrace.get(traceId)
  if (found) byTrace.delete(traceId)
  return found
}

/** The active span's ids when an OpenTelemetry SDK is recording one, else the request's the register hook follows. */
export function activeTraceIds(): { traceId: string; spanId: string } | undefined {
  const ctx = trace.getActiveSpan()?.spanContext()
  if (ctx && isSpanContextValid(ctx)) return { traceId: ctx.traceId, spanId: ctx.spanId }
  return storage.getStore()?.[REQUEST]
}

function recordForTrace(values: ActivityContext): void {
  const ctx = trace.getActiveSpan()?.spanContext()
  if (!ctx || !isSpanContextValid(ctx)) return
  let entry = byTrace.get(ctx.traceId)
  if (!entry) {
    if (byTrace.size >= MAX_TRACES) byTrace.delete(byTrace.keys().next().value!)
    byTrace.set(ctx.traceId, (entry = {}))
  }
  assignDefined(entry, values)
}

function assignDefined(target: ActivityContext, values: ActivityContext): void {
  if (values.actorId !== undefined) target.actorId = values.actorId
  if (values.tenantId !== undefined) target.tenantId = values.tenantId
  if (values.correlationId !== undefined) target.correlationId = values.correlationId
}

/** The context as the span attributes the mapping reads (schemas/span-activity.ts). */
export function contextAttributes(c: ActivityContext | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (!c) return out
  if (c.actorId) out['activity.actor_id'] = c.actorId
  if (c.tenantId) out['activity.tenant_id'] = c.tenantId
  if (c.correlationId) out['activity.correlation_id'] = c.correlationId
  return out
}

/** The three values as they are now: a scope's store can still change (setActivityContext) after a write. */
export function copyContext(c: ActivityContext | undefined): ActivityContext | undefined {
  if (!c || (c.actorId === undefined && c.tenantId === undefined && c.correlationId === undefined)) return undefined
  return { actorId: c.actorId, tenantId: c.tenantId, correlationId: c.correlationId }
}
