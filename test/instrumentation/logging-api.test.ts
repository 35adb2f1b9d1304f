/**
 * The logging API and the span processor, shipping through the real client
 * to a real HTTP server; trace ids come from a real OpenTelemetry tracer.
 * Each activity is also run through the collector's validation, so what the
 * API builds is what the collector accepts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { SpanKind, context, trace } from '@opentelemetry/api'
import { node, type tracing } from '@opentelemetry/sdk-node'
import { parseActivity } from '../../schemas/activity.ts'
import {
  ActivitySpanProcessor, type ActivitySpanProcessorOptions, configureActivityLogging, getActivityClient, logSystemEvent, logUserAction, withActivity,
  withActivityContext, withApiLogging, withBatchLogging, withDatabaseLogging,
} from '../../instrumentation/index.ts'
import { startCaptureServer, type CaptureServer } from '../helpers/capture-server.ts'

let server: CaptureServer
const hooks: ActivitySpanProcessorOptions = {}
const provider = new node.NodeTracerProvider({
  spanProcessors: [
    new ActivitySpanProcessor({
      filter: (s) => hooks.filter?.(s) ?? true,
      map: (s, mapped) => (hooks.map ? hooks.map(s, mapped) : mapped),
    }),
  ],
})
provider.register()
const tracer = trace.getTracer('logging-api-test')

beforeAll(async () => {
  server = await startCaptureServer()
  configureActivityLogging({ endpoint: server.url, service: 'api-test', flushIntervalMs: 10 })
})
afterAll(async () => {
  await getActivityClient().shutdown()
  await provider.shutdown()
  await server.close()
})
beforeEach(() => {
  server.accepted.length = 0
  hooks.filter = undefined
  hooks.map = undefined
})

/** What arrived, as the collector normalizes it (defaults applied, attributes as strings). */
async function sent(): Promise<Record<string, any>[]> {
  await getActivityClient().forceFlush()
  return server.accepted.map((a) => {
    const result = parseActivity(a)
    if (!result.ok) throw new Error(`the collector would reject ${JSON.stringify(a)}: ${JSON.stringify(result.issues)}`)
    return result.activity
  })
}

describe('the logging API', () => {
  it('logUserAction records who did what to which thing, in the active trace', async () => {
    let traceId = ''
    let spanId = ''
    const id = tracer.startActiveSpan('handler', (span) => {
      traceId = span.spanContext().traceId
      spanId = span.spanContext().spanId
      const logged = logUserAction('invoice.paid', { actorId: 'u-1', entityType: 'invoice', entityId: 9, category: 'billing', details: { total: 3 } })
      span.end()
      return logged
    })
    const [a] = await sent()
    expect(a).toMatchObject({
      id, source: 'user', action: 'invoice.paid', actor_id: 'u-1', entity_type: 'invoice', entity_id: '9', category: 'billing',
      details: { total: 3 }, trace_id: traceId, span_id: spanId, service: 'api-test',
    })
  })

  it('withActivityContext gives every activity beneath it the actor and tenant', async () => {
    await withActivityContext({ actorId: 'u-2', tenantId: 't-1' }, async () => {
      await new Promise((r) => setTimeout(r, 5))
      logSystemEvent('cache.cleared')
    })
    expect((await sent())[0]).toMatchObject({ source: 'system', action: 'cache.cleared', actor_id: 'u-2', tenant_id: 't-1' })
  })

  it('withActivity returns what fn returns and records its duration; what runs inside shares its correlation id', async () => {
    const value = await withActivity('report.build', async () => {
      logUserAction('report.row', { actorId: 'u-3' })
      await new Promise((r) => setTimeout(r, 30))
      return 42
    })
    expect(value).toBe(42)
    const rows = await sent()
    const outer = rows.find((r) => r.action === 'report.build')!
    const inner = rows.find((r) => r.action === 'report.row')!
    expect(outer).toMatchObject({ source: 'system', status: 'success' })
    expect(outer.duration_ms).toBeGreaterThanOrEqual(25)
    // Nothing outside to correlate with: what ran inside points to the operation's own activity.
    expect(outer.correlation_id).toBeUndefined()
    expect(inner.correlation_id).toBe(outer.id)
  })

  it('withActivity records a failure with the error message and rethrows the same error, sync or async', async () => {
    const boom = new TypeError('card declined')
    await expect(withActivity('payment.charge', async () => { throw boom })).rejects.toBe(boom)
    expect(() => withActivity('payment.refund', () => { throw boom }, { actorId: 'u-4' })).toThrow(boom)
    const rows = await sent()
    expect(rows.map((r) => [r.action, r.status, r.severity, r.details])).toEqual([
      ['payment.charge', 'failure', 'warning', { error: 'card declined', error_type: 'TypeError' }],
      ['payment.refund', 'failure', 'warning', { error: 'card declined', error_type: 'TypeError' }],
    ])
    expect(rows[1]).toMatchObject({ source: 'user', actor_id: 'u-4' })
  })

  it('withDatabaseLogging records the write on its table and row', async () => {
    const rows = withDatabaseLogging('UPDATE', 'orders', 7, () => 1, 'u-5')
    expect(rows).toBe(1)
    expect((await sent())[0]).toMatchObject({
      source: 'database', action: 'db.update', category: 'data_modification', entity_type: 'orders', entity_id: '7', actor_id: 'u-5',
    })
  })

  it('withDatabaseLogging records the values it is given as CDC does, sensitive columns redacted in the app', async () => {
    withDatabaseLogging('update', 'users', 3, () => undefined, {
      actorId: 'u-1', old: { email: 'a@b', password: 'old-s3cret' }, new: { email: 'c@d', password: 'new-s3cret' },
    })
    const [a] = await sent()
    expect(a).toMatchObject({ entity_id: '3', actor_id: 'u-1', details: { old: { email: 'a@b', password: '[redacted]' }, new: { email: 'c@d', password: '[redacted]' }, changed: ['email', 'password'] } })
    // That the password changed is the audit's business; what it is, is not.
    expect(JSON.stringify(a)).not.toContain('s3cret')
  })

  it('withApiLogging keeps no credentials or query string, and fails on an error status', async () => {
    await withApiLogging('https://user:secret@pay.example.com/v1/charge?token=abc', 'post', async () => ({ status: 502 }))
    const [a] = await sent()
    expect(a).toMatchObject({ source: 'integration', action: 'api.post', category: 'api', status: 'failure', severity: 'warning' })
    expect(a!.attributes).toEqual({ 'http.request.method': 'POST', 'url.full': 'https://pay.example.com/v1/charge', 'http.response.status_code': '502' })
    expect(JSON.stringify(a)).not.toMatch(/secret|token=abc/)
  })

  it('withBatchLogging names the batch and its size', async () => {
    await withBatchLogging('nightly import', 120, async () => undefined)
    expect((await sent())[0]).toMatchObject({
      action: 'batch.nightly_import', entity_type: 'batch', entity_id: 'nightly import', attributes: { 'batch.name': 'nightly import', 'batch.size': '120' },
    })
  })
})

describe('ActivitySpanProcessor', () => {
  const dbSpan = (statement: string) => {
    const span = tracer.startSpan('pg.query', { kind: SpanKind.CLIENT, attributes: { 'db.system': 'postgresql', 'db.statement': statement } })
    span.end()
  }

  it('maps a database write span, stamped with the activity context it started in', async () => {
    withActivityContext({ actorId: 'u-6' }, () => dbSpan('DELETE FROM sessions WHERE id = $1'))
    expect((await sent())[0]).toMatchObject({ source: 'database', action: 'db.delete', entity_type: 'sessions', actor_id: 'u-6' })
  })

  it('lets the filter skip spans and map change or drop them, and survives a throwing hook', async () => {
    hooks.filter = (s) => !String(s.attributes['db.statement']).includes('audit_ignored')
    hooks.map = (s: tracing.ReadableSpan, mapped) => {
      if (String(s.attributes['db.statement']).includes('boom')) throw new Error('hook bug')
      return mapped && { ...mapped, tenant_id: 't-9' }
    }
    dbSpan('INSERT INTO audit_ignored VALUES (1)')
    dbSpan('INSERT INTO boom VALUES (1)')
    dbSpan('INSERT INTO kept VALUES (1)')
    const rows = await sent()
    expect(rows.map((r) => [r.entity_type, r.tenant_id])).toEqual([['kept', 't-9']])
  })

  it("names who a request's handler set on its server span, which began before the handler did", async () => {
    const server = tracer.startSpan('POST /orders', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'http.route': '/orders' } })
    context.with(trace.setSpan(context.active(), server), () =>
      tracer.startActiveSpan('handler', (handler) => {
        withActivityContext({ actorId: 'u-8', tenantId: 't-2' }, () => dbSpan('INSERT INTO orders (id) VALUES (1)'))
        handler.end()
      }),
    )
    server.end()
    const rows = await sent()
    expect(rows.find((r) => r.action === 'api.post')).toMatchObject({ actor_id: 'u-8', tenant_id: 't-2', entity_id: '/orders' })
    expect(rows.find((r) => r.action === 'db.insert')).toMatchObject({ actor_id: 'u-8' })
  })

  it('skips spans that cannot be activities before mapping them: reads, BEGIN, outgoing calls, internal spans', async () => {
    // A processor of its own without a map hook (a map hook asks to see every span).
    const seen: string[] = []
    const own = new node.NodeTracerProvider({ spanProcessors: [new ActivitySpanProcessor({ filter: (s) => (seen.push(String(s.attributes['db.statement'] ?? s.name)), true) })] })
    const t = own.getTracer('prefilter')
    const db = (statement: string) => t.startSpan('pg.query', { kind: SpanKind.CLIENT, attributes: { 'db.system': 'postgresql', 'db.statement': statement } }).end()
    db('SELECT * FROM orders')
    db('BEGIN')
    db("SELECT set_config('app.user', 'u', true)")
    t.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'GET' } }).end()
    t.startSpan('render', { kind: SpanKind.INTERNAL }).end()
    db('UPDATE orders SET n = 1 WHERE id = 2')
    expect(seen).toEqual(['UPDATE orders SET n = 1 WHERE id = 2'])
    expect((await sent()).map((r) => r.action)).toEqual(['db.update'])
  })
})
