import { describe, expect, it } from 'vitest'
import { uuidv7 } from 'uuidv7'
import { CATEGORIES, LIMITS, parseActivity, uuidv7Time } from '../../schemas/activity.ts'

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0)

function ok(input: unknown) {
  const r = parseActivity(input, NOW)
  if (!r.ok) throw new Error(`expected valid, got ${JSON.stringify(r.issues)}`)
  return r.activity
}

function issues(input: unknown) {
  const r = parseActivity(input, NOW)
  if (r.ok) throw new Error('expected invalid')
  return r.issues
}

describe('activity contract', () => {
  it('fills defaults and assigns a UUIDv7 when only action and source are sent', () => {
    const a = ok({ action: 'user.login', source: 'user' })
    expect(a).toMatchObject({ category: 'other', severity: 'info', status: 'success', timestamp: NOW, received_at: NOW, attributes: {} })
    expect(a.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  })

  it('documents at least 25 categories plus other', () => {
    expect(CATEGORIES).toContain('other')
    expect(CATEGORIES.filter((c) => c !== 'other').length).toBeGreaterThanOrEqual(25)
    expect(new Set(CATEGORIES).size).toBe(CATEGORIES.length)
  })

  it('accepts RFC 3339 with an offset and epoch milliseconds, normalized to epoch ms', () => {
    expect(ok({ action: 'a.b', source: 'user', timestamp: '2026-01-02T03:04:05.678+02:00' }).timestamp).toBe(Date.UTC(2026, 0, 2, 1, 4, 5, 678))
    expect(ok({ action: 'a.b', source: 'user', timestamp: 1767322800000 }).timestamp).toBe(1767322800000)
  })

  it('rejects a timestamp without an offset, in seconds, or far in the future', () => {
    expect(issues({ action: 'a.b', source: 'user', timestamp: '2026-01-02T03:04:05' })[0]!.path).toBe('timestamp')
    expect(issues({ action: 'a.b', source: 'user', timestamp: 1767322800 })[0]!.message).toMatch(/before 2000/)
    expect(issues({ action: 'a.b', source: 'user', timestamp: Date.now() + 2 * LIMITS.futureSkewMs })[0]!.message).toMatch(/future/)
  })

  it('takes the timestamp from a UUIDv7 id when none is sent, so a re-send is the same row', () => {
    const id = uuidv7()
    const first = ok({ id, action: 'a.b', source: 'user' })
    const again = parseActivity({ id, action: 'a.b', source: 'user' }, NOW + 60_000)
    expect(again.ok && again.activity.timestamp).toBe(first.timestamp)
    expect(Math.abs(first.timestamp - Date.now())).toBeLessThan(5_000)
    expect(uuidv7Time('4b0e7f2c-1111-4222-8333-444455556666')).toBeUndefined() // v4: no clock inside
  })

  it('names the field and the reason for each problem', () => {
    const found = issues({ action: 'not an action!', source: 'robot', severity: 'loud', trace_id: 'xyz', ip: '999.1.1.1' })
    expect(found.map((i) => i.path).sort()).toEqual(['action', 'ip', 'severity', 'source', 'trace_id'])
    expect(found.find((i) => i.path === 'trace_id')!.message).toMatch(/32 lowercase hex/)
  })

  it('rejects an item that is not an object, saying what it was', () => {
    expect(issues([1, 2])[0]).toEqual({ path: '', message: 'expected an object, got an array' })
    expect(issues('x')[0]!.message).toBe('expected an object, got string')
    expect(issues(null)[0]!.message).toBe('expected an object, got null')
  })

  it('moves unknown fields into attributes as strings, explicit attributes winning', () => {
    const a = ok({ action: 'a.b', source: 'user', region: 'eu', n: 3, flag: true, obj: { x: [1] }, plan: 'free', attributes: { plan: 'pro' } })
    expect(a.attributes).toEqual({ region: 'eu', n: '3', flag: 'true', obj: '{"x":[1]}', plan: 'pro' })
    expect(a).not.toHaveProperty('region')
  })

  it('stringifies number and boolean attribute values and rejects nested ones', () => {
    expect(ok({ action: 'a.b', source: 'user', attributes: { n: 1.5, b: false } }).attributes).toEqual({ n: '1.5', b: 'false' })
    expect(issues({ action: 'a.b', source: 'user', attributes: { o: { deep: 1 } } })[0]!.path).toBe('attributes.o')
  })

  it(`caps attributes at ${LIMITS.attributes}, unknown fields included`, () => {
    const many = Object.fromEntries(Array.from({ length: LIMITS.attributes }, (_, i) => [`k${i}`, 'v']))
    expect(Object.keys(ok({ action: 'a.b', source: 'user', attributes: many }).attributes)).toHaveLength(LIMITS.attributes)
    expect(issues({ action: 'a.b', source: 'user', attributes: many, extra: 1 })[0]!.path).toBe('attributes')
  })

  it('keeps details as sent and bounds their size', () => {
    expect(ok({ action: 'a.b', source: 'user', details: { k: 'v' } }).details).toEqual({ k: 'v' })
    expect(ok({ action: 'a.b', source: 'user', details: 'free text' }).details).toBe('free text')
    expect(issues({ action: 'a.b', source: 'user', details: 'x'.repeat(LIMITS.details + 1) })[0]!.path).toBe('details')
  })

  it('accepts IPv4 and IPv6 addresses', () => {
    expect(ok({ action: 'a.b', source: 'user', ip: '2001:db8::1' }).ip).toBe('2001:db8::1')
    expect(ok({ action: 'a.b', source: 'user', ip: '10.0.0.1' }).ip).toBe('10.0.0.1')
  })
})
