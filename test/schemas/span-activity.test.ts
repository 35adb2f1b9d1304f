import { describe, expect, it } from 'vitest'
import { parseActivity } from '../../schemas/activity.ts'
import { mayBeActivity, mayWrite, parseStatement, spanToActivity, type SpanRecord } from '../../schemas/span-activity.ts'

function span(overrides: Partial<SpanRecord> & { attributes?: SpanRecord['attributes'] }): SpanRecord {
  return {
    name: 'span',
    kind: 'internal',
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    startTimeMs: Date.UTC(2026, 10, 1, 12, 0, 0, 250),
    durationMs: 12.5,
    status: 'unset',
    resource: { 'service.name': 'billing' },
    attributes: {},
    ...overrides,
  }
}

/** The mapping's output must pass the collector's validation, as the receiver will apply it. */
function mapped(s: SpanRecord) {
  const input = spanToActivity(s)
  if (!input) return undefined
  const result = parseActivity(input)
  if (!result.ok) throw new Error(JSON.stringify(result.issues))
  return result.activity
}

describe('spanToActivity', () => {
  it('turns a span with activity.action into that activity, activity.* attributes setting its fields', () => {
    const a = mapped(span({
      attributes: {
        'activity.action': 'invoice.paid', 'activity.category': 'billing', 'activity.entity_type': 'invoice',
        'activity.entity_id': 'inv-9', 'enduser.id': 'u-1', plan: 'pro', retries: 2,
      },
    }))
    expect(a).toMatchObject({
      action: 'invoice.paid', source: 'user', category: 'billing', entity_type: 'invoice', entity_id: 'inv-9', actor_id: 'u-1',
      service: 'billing', trace_id: '0af7651916cd43dd8448eb211c80319c', span_id: 'b7ad6b7169203331', duration_ms: 12.5,
      timestamp: Date.UTC(2026, 10, 1, 12, 0, 0, 250), status: 'success',
    })
    expect(a!.attributes).toEqual({ plan: 'pro', retries: '2' })
  })

  it('marks an explicit activity failed when its span ended in error', () => {
    expect(mapped(span({ status: 'error', attributes: { 'activity.action': 'export.run' } }))).toMatchObject({
      status: 'failure', severity: 'warning', source: 'system',
    })
  })

  it.each([
    [200, 'success', 'info'],
    [201, 'success', 'info'],
    [404, 'failure', 'info'],
    [401, 'failure', 'notice'],
    [403, 'failure', 'notice'],
    [503, 'failure', 'warning'],
  ] as const)('maps an HTTP server span answering %i to status %s, severity %s', (code, status, severity) => {
    const a = mapped(span({
      kind: 'server',
      attributes: { 'http.request.method': 'POST', 'http.route': '/orders/:id', 'http.response.status_code': code, 'url.path': '/orders/7' },
    }))
    expect(a).toMatchObject({ action: 'api.post', category: 'api', status, severity, entity_type: 'http_route', entity_id: '/orders/:id' })
    expect(a!.attributes).toMatchObject({ 'http.route': '/orders/:id', 'http.response.status_code': String(code), 'url.path': '/orders/7' })
  })

  it('reads the older HTTP semantic conventions too', () => {
    expect(mapped(span({ kind: 'server', attributes: { 'http.method': 'GET', 'http.status_code': 500, 'http.target': '/a?token=x' } })))
      .toMatchObject({ action: 'api.get', status: 'failure', severity: 'warning', attributes: { 'url.path': '/a' } })
  })

  it('ignores HTTP client spans: the server side records the request', () => {
    expect(spanToActivity(span({ kind: 'client', attributes: { 'http.request.method': 'GET' } }))).toBeUndefined()
  })

  it.each([
    ['INSERT INTO orders (a) VALUES ($1)', 'db.insert', 'orders'],
    ['update public.accounts set x = 1', 'db.update', 'accounts'],
    ['DELETE FROM "Order Lines" WHERE id = $1', 'db.delete', 'Order Lines'],
  ])('maps a database client span running %s', (statement, action, table) => {
    const a = mapped(span({ kind: 'client', attributes: { 'db.system': 'postgresql', 'db.statement': statement, 'db.name': 'shop' } }))
    expect(a).toMatchObject({ action, source: 'database', category: 'data_modification', entity_type: table, status: 'success' })
    expect(a!.attributes).toMatchObject({ 'db.system': 'postgresql', 'db.namespace': 'shop', 'db.query.text': statement })
  })

  it('prefers the semantic-convention operation and collection over the parsed statement', () => {
    const a = mapped(span({
      kind: 'client',
      attributes: { 'db.system.name': 'postgresql', 'db.operation.name': 'UPDATE', 'db.collection.name': 'invoices', 'db.query.text': 'CALL x()' },
    }))
    expect(a).toMatchObject({ action: 'db.update', entity_type: 'invoices' })
  })

  it('does not record reads or DDL, and records a failed write as a failure', () => {
    const db = (statement: string, status: SpanRecord['status'] = 'unset') =>
      span({ kind: 'client', status, statusMessage: 'duplicate key', attributes: { 'db.system': 'postgresql', 'db.statement': statement } })
    expect(spanToActivity(db('SELECT * FROM orders'))).toBeUndefined()
    expect(spanToActivity(db('CREATE TABLE t (a int)'))).toBeUndefined()
    expect(mapped(db('INSERT INTO t VALUES (1)', 'error'))).toMatchObject({
      status: 'failure', severity: 'warning', details: { error: 'duplicate key' },
    })
  })

  it('does not turn other spans into activities', () => {
    expect(spanToActivity(span({ name: 'compute' }))).toBeUndefined()
  })
})

describe('parseStatement', () => {
  it.each([
    ['  -- audit me\n/* c */ insert into Orders values (1)', { operation: 'insert', table: 'orders' }],
    ['WITH moved AS (SELECT * FROM a) INSERT INTO b SELECT * FROM moved', { operation: 'insert', table: 'b' }],
    ['UPDATE ONLY "Sales"."Q1" SET x = 1', { operation: 'update', table: 'Q1', schema: 'Sales' }],
    ['DELETE FROM "we""ird" WHERE true', { operation: 'delete', table: 'we"ird' }],
    ['TRUNCATE orders', { operation: 'truncate' }],
  ])('%s', (sql, expected) => {
    expect(parseStatement(sql)).toEqual(expected)
  })
})

describe('statements from anyone: leading comments', () => {
  // A lazy comment pattern let each of n comments end at any later `*/`: 30 took ~9 s, 40 hours, on the collector's loop.
  const hostile = `${'/**/'.repeat(10_000)}SELEC`

  it('are read in one pass, however many: a span of 10,000 empty comments is refused at once', () => {
    const t0 = performance.now()
    expect(mayWrite(hostile)).toBe(false)
    expect(parseStatement(hostile)).toBeUndefined()
    expect(mayBeActivity('client', { 'db.system': 'postgresql', 'db.statement': hostile })).toBe(false)
    expect(mapped(span({ kind: 'client', attributes: { 'db.system': 'postgresql', 'db.statement': hostile } }))).toBeUndefined()
    expect(performance.now() - t0).toBeLessThan(1000)
  })

  it('are skipped before the first word, as the server skips them', () => {
    expect(mayWrite('/* job 7 */ -- nightly\n  INSERT INTO t VALUES (1)')).toBe(true)
    expect(mayWrite('/*** a **/UPDATE t SET a = 1')).toBe(true)
    expect(mayWrite('/* insert */ SELECT 1')).toBe(false)
    expect(mayWrite('/* never closed INSERT')).toBe(false)
    expect(parseStatement('/* c */ UPDATE app.orders SET a = 1')).toEqual({ operation: 'update', table: 'orders', schema: 'app' })
  })
})
