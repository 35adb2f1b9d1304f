/**
 * What the SDK says a write wrote, shape by shape: the table in
 * instrumentation/README.md ("Row identity and values") is these cases. The
 * hooks run on real SDK spans; the span mapping is the collector's own.
 */
import { describe, expect, it } from 'vitest'
import { BasicTracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { parseActivity } from '../../schemas/activity.ts'
import { DB_ROWS_ATTRIBUTE, MAX_SPAN_ROWS, spanToActivities, type SpanRecord } from '../../schemas/span-activity.ts'
import { readStatement } from '../../instrumentation/statement-rows.ts'
import { dbRowHooks, dbRowOptionsFromEnv, type DbRowOptions } from '../../instrumentation/pg-row-hooks.ts'
import { toSpanRecord } from '../../instrumentation/activity-span-processor.ts'

const tracer = new BasicTracerProvider().getTracer('test')

/** A write's activities, as the app's hooks and the collector's mapping make them. */
function activitiesOf(text: string, values: unknown[] = [], result?: { rows?: unknown[]; rowCount?: number | null }, options: DbRowOptions = {}) {
  const hooks = dbRowHooks(options)
  const span = tracer.startSpan('pg.query', { kind: 2, attributes: { 'db.system.name': 'postgresql', 'db.query.text': text } })
  hooks.requestHook(span, { query: { text, values } })
  if (result) hooks.responseHook(span, { data: result })
  span.end()
  const record: SpanRecord = toSpanRecord(span as unknown as ReadableSpan)
  return spanToActivities(record).map((a) => {
    const parsed = parseActivity(a)
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues))
    return parsed.activity
  })
}

const rowsOf = (text: string, values: unknown[] = [], result?: { rows?: unknown[]; rowCount?: number | null }, options?: DbRowOptions) =>
  activitiesOf(text, values, result, options).map((a) => ({ entity_id: a.entity_id, details: a.details }))

describe('readStatement', () => {
  it('reads INSERT ... VALUES: columns, parameters and literals, one row per tuple', () => {
    expect(readStatement(`INSERT INTO public."Orders" (id, customer, "Total", note, paid) VALUES ($1, $2, 12.5, 'it''s', true), ($3, 'bob', -1, NULL, false)`, [7, 'ada', 8])).toEqual({
      operation: 'insert', table: 'Orders', returning: false,
      written: [
        { id: 7, customer: 'ada', Total: 12.5, note: "it's", paid: true },
        { id: 8, customer: 'bob', Total: -1, note: null, paid: false },
      ],
    })
  })

  it('leaves out what an expression writes, and keeps a cast parameter', () => {
    expect(readStatement('INSERT INTO t (id, at, doc, n) VALUES ($1::int, now(), $2::jsonb, coalesce($3, 0))', [1, { a: 1 }, 2])!.written).toEqual([{ id: 1, doc: { a: 1 } }])
    expect(readStatement('UPDATE t SET n = n + 1, name = $1 WHERE id = $2', ['x', 3])).toMatchObject({ written: [{ name: 'x' }], where: { id: 3 } })
  })

  it('reads the WHERE of UPDATE and DELETE only when it pins columns with AND', () => {
    expect(readStatement('DELETE FROM ONLY t AS x WHERE x.id = $1 AND tenant = $2 RETURNING *', [1, 'a'])).toEqual({ operation: 'delete', table: 't', written: [], where: { id: 1, tenant: 'a' }, returning: true })
    expect(readStatement('DELETE FROM t WHERE id = $1 OR id = $2', [1, 2])!.where).toBeUndefined()
    expect(readStatement('DELETE FROM t WHERE id IN ($1, $2)', [1, 2])!.where).toBeUndefined()
    expect(readStatement('UPDATE t SET a = $1 WHERE id > $2', [1, 2])!.where).toBeUndefined()
    expect(readStatement('UPDATE t SET a = 1 FROM u WHERE t.id = u.id', [])!.where).toBeUndefined()
    expect(readStatement('DELETE FROM t USING u WHERE t.id = u.id', [])!.where).toBeUndefined()
  })

  it('skips comments and ON CONFLICT, and sees RETURNING', () => {
    expect(readStatement('/* app */ INSERT INTO t (id) VALUES ($1) -- c\n ON CONFLICT (id) DO UPDATE SET id = excluded.id RETURNING id', [1])).toMatchObject({ written: [{ id: 1 }], returning: true })
  })

  it('gives nothing for the shapes it does not read, rather than a guess', () => {
    for (const sql of [
      'INSERT INTO t SELECT * FROM u', 'INSERT INTO t DEFAULT VALUES', 'WITH x AS (SELECT 1) INSERT INTO t (id) VALUES (1)',
      "INSERT INTO t (a) VALUES (E'\\n')", 'INSERT INTO t (a) VALUES ($$x$$)', "INSERT INTO t (a) VALUES ('unterminated", 'SELECT 1',
      'INSERT INTO t (a, b) VALUES ($1)', 'INSERT INTO t (a) VALUES ($1) (', '', '\u0000',
    ]) {
      const r = readStatement(sql, [1])
      expect(r?.written.some((w) => Object.keys(w).length > 0) ?? false, sql).toBe(false)
    }
  })

  it('takes a parameter number that was not bound as no value', () => {
    expect(readStatement('INSERT INTO t (a, b) VALUES ($1, $9)', ['x'])!.written).toEqual([{ a: 'x' }])
  })
})

describe('the pg hooks and the span mapping', () => {
  it('makes one activity per inserted row, keyed by what RETURNING gave back', () => {
    const rows = rowsOf('INSERT INTO orders (customer, total) VALUES ($1, $2), ($3, $4) RETURNING id', ['ada', 1, 'bob', 2], { rows: [{ id: 10 }, { id: 11 }], rowCount: 2 })
    expect(rows).toEqual([
      { entity_id: '10', details: { new: { customer: 'ada', total: 1, id: 10 } } },
      { entity_id: '11', details: { new: { customer: 'bob', total: 2, id: 11 } } },
    ])
  })

  it('keys an UPDATE by its WHERE, or each returned row, and composite keys as a JSON array', () => {
    expect(rowsOf('UPDATE orders SET status = $1 WHERE id = $2', ['paid', 5], { rowCount: 1 })).toEqual([{ entity_id: '5', details: { new: { status: 'paid' } } }])
    expect(rowsOf('UPDATE orders SET status = $1 RETURNING id, status', ['x'], { rows: [{ id: 1, status: 'x' }, { id: 2, status: 'x' }], rowCount: 2 }).map((r) => r.entity_id)).toEqual(['1', '2'])
    expect(rowsOf('DELETE FROM items WHERE order_id = $1 AND line = $2', [5, 2], { rowCount: 1 }, { keys: { items: ['order_id', 'line'] } })).toEqual([{ entity_id: '[5,2]' }])
  })

  it('says how many rows a statement hit when its WHERE names no row, and gives none for zero rows', () => {
    expect(rowsOf("UPDATE orders SET status = 'void' WHERE customer = $1", ['ada'], { rowCount: 3 })).toEqual([{ details: { new: { status: 'void' }, where: { customer: 'ada' }, row_count: 3 } }])
    expect(rowsOf('DELETE FROM orders WHERE id = $1', [404], { rowCount: 0 })).toEqual([])
    expect(rowsOf('INSERT INTO orders (id) VALUES ($1) ON CONFLICT DO NOTHING', [1], { rowCount: 0 })).toEqual([])
  })

  it('keeps DELETE ... RETURNING rows as the old values', () => {
    expect(rowsOf('DELETE FROM orders WHERE status = $1 RETURNING *', ['void'], { rows: [{ id: 3, status: 'void' }], rowCount: 1 })).toEqual([{ entity_id: '3', details: { old: { id: 3, status: 'void' } } }])
  })

  it('replaces the values of sensitive columns in the app, before the span holds them', () => {
    const hooks = dbRowHooks()
    const span = tracer.startSpan('pg.query', { kind: 2, attributes: { 'db.system.name': 'postgresql' } })
    hooks.requestHook(span, { query: { text: 'INSERT INTO users (id, email, password_hash, api_token, card_number) VALUES ($1, $2, $3, $4, $5)', values: [1, 'a@b', 'hash-s3cret', 'tok-s3cret', '4111-s3cret'] } })
    span.end()
    const attribute = String((span as unknown as ReadableSpan).attributes[DB_ROWS_ATTRIBUTE])
    expect(attribute).not.toContain('s3cret')
    expect(JSON.parse(attribute).rows[0].details.new).toEqual({ id: 1, email: 'a@b', password_hash: '[redacted]', api_token: '[redacted]', card_number: '[redacted]' })
    expect(rowsOf('INSERT INTO t (id, pin) VALUES ($1, $2)', [1, '1234'], undefined, { redact: ['pin'], values: false })).toEqual([{ entity_id: '1' }])
  })

  it('lists rows up to the bound and counts the rest in one more activity', () => {
    const returned = Array.from({ length: 7 }, (_, i) => ({ id: i }))
    const rows = rowsOf('DELETE FROM t WHERE batch = $1 RETURNING id', [1], { rows: returned, rowCount: 7 }, { maxRows: 5 })
    expect(rows).toHaveLength(6)
    expect(rows.slice(0, 5).map((r) => r.entity_id)).toEqual(['0', '1', '2', '3', '4'])
    expect(rows[5]).toEqual({ entity_id: undefined, details: { rows_omitted: 2, row_count: 7 } })
    const tuples = Array.from({ length: 8 }, (_, i) => `($${i + 1})`).join(', ')
    expect(rowsOf(`INSERT INTO t (id) VALUES ${tuples}`, [0, 1, 2, 3, 4, 5, 6, 7], { rowCount: 8 }, { maxRows: 5 }).map((r) => r.entity_id ?? r.details)).toEqual(['0', '1', '2', '3', '4', { rows_omitted: 3, row_count: 8 }])
  })

  it('bounds what a hostile value costs: long text, bytes, deep JSON, NaN, bigint', () => {
    const [row] = rowsOf('INSERT INTO t (id, a, b, c, d) VALUES ($1, $2, $3, $4, $5)', [2n ** 70n, 'x'.repeat(100_000), Buffer.alloc(10_000), JSON.parse('['.repeat(5000) + ']'.repeat(5000)), NaN])
    const v = (row!.details as { new: Record<string, unknown> }).new
    expect(row!.entity_id).toBe(String(2n ** 70n))
    expect(String(v.a)).toMatch(/^x{1024}… \(100000 characters\)$/)
    expect(v.b).toBe('[10000 bytes]')
    expect(v.c).toMatch(/characters of JSON|not serialisable/)
    expect(v.d).toBe('NaN')
  })

  it('gives each row a stable id, so a span sent twice is the same rows, and keeps the span mapping for spans without rows', () => {
    const record = (rows: string): SpanRecord => ({
      name: 'q', kind: 'client', traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', startTimeMs: Date.UTC(2026, 0, 1), durationMs: 1,
      status: 'unset', resource: {}, attributes: { 'db.system.name': 'postgresql', 'db.query.text': 'DELETE FROM t', [DB_ROWS_ATTRIBUTE]: rows },
    })
    const good = JSON.stringify({ rows: [{ entity_id: '1' }, { entity_id: '2' }] })
    expect(spanToActivities(record(good)).map((a) => a.id)).toEqual(spanToActivities(record(good)).map((a) => a.id))
    expect(new Set(spanToActivities(record(good)).map((a) => a.id)).size).toBe(2)
    // A span is anyone's over OTLP: a million listed rows become MAX_SPAN_ROWS activities and one that counts the rest.
    const flood = spanToActivities(record(JSON.stringify({ rows: Array.from({ length: 1_000_000 }, () => ({})), omitted: 5 })))
    expect(flood).toHaveLength(MAX_SPAN_ROWS + 1)
    expect(flood.at(-1)!.details).toEqual({ rows_omitted: 1_000_000 - MAX_SPAN_ROWS + 5 })
    // A forged or truncated attribute is ignored: the write is still one activity.
    for (const forged of ['{', '[]', '{"rows": 5}', JSON.stringify({ rows: [{ entity_id: 5, details: [1] }] }).slice(0, -3)]) {
      expect(spanToActivities(record(forged)), forged).toHaveLength(1)
    }
  })

  it('reads its options from the environment the register hook is given', () => {
    expect(dbRowOptionsFromEnv({ ACTLINE_DB_KEYS: 'items=order_id+line; accounts=no', ACTLINE_REDACT: 'pin, dob', ACTLINE_DB_MAX_ROWS: '10', ACTLINE_DB_VALUES: 'false' })).toEqual({
      keys: { items: ['order_id', 'line'], accounts: ['no'] }, redact: ['pin', 'dob'], maxRows: 10, values: false,
    })
  })
})
