/**
 * Who is acting, for which tenant, under which correlation id: set once
 * where a request is authenticated, read by every activity logged beneath
 * it, and stamped on every span started beneath it (so a database span's
 * activity names the user whose request ran the statement, which is what
 * audit triggers read from a session variable). AsyncLocalStorage, so it
 * works with or without an OpenTelemetry SDK.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { trace, isSpanContextValid } from '@opentelemetry/api'

export interface ActivityContext {
  actorId?: string
  tenantId?: string
  correlationId?: string
}

const storage = new AsyncLocalStorage<ActivityContext>()

/** Runs fn with these values added to the current activity context. */
export function withActivityContext<T>(values: ActivityContext, fn: () => T): T {
  const current = storage.getStore()
  return storage.run(current ? { ...current, ...values } : values, fn)
}

export function currentActivityContext(): ActivityContext | undefined {
  return storage.getStore()
}

/** The active span's ids, when an OpenTelemetry SDK is recording one. */
export function activeTraceIds(): { traceId: string; spanId: string } | undefined {
  const ctx = trace.getActiveSpan()?.spanContext()
  return ctx && isSpanContextValid(ctx) ? { traceId: ctx.traceId, spanId: ctx.spanId } : undefined
}
