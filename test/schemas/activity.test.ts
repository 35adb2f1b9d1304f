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

  describe('values no store can hold are refused per item, naming the field', () => {
    const base = { action: 'a.b', source: 'user' }

    it('refuses a lone UTF-16 surrogate wherever it is: a field, a detail, an attribute key', () => {
      expect(issues({ ...base, actor_id: 'x\ud800' })[0]).toMatchObject({ path: 'actor_id', message: expect.stringMatching(/lone UTF-16 surrogate at index 1/) })
      expect(issues({ ...base, details: { a: ['ok', '\udc00'] } })[0]!.path).toBe('details.a.1')
      expect(issues({ ...base, attributes: { ['k\ud83d']: 'v' } })[0]!.message).toMatch(/key .*lone UTF-16 surrogate/)
      // A surrogate pair is a character like any other.
      expect(ok({ ...base, actor_id: 'emoji \ud83d\ude00' }).actor_id).toBe('emoji 😀')
    })

    it('refuses NUL, which PostgreSQL cannot store, and keeps other control characters as sent', () => {
      expect(issues({ ...base, entity_id: 'a\u0000b' })[0]).toMatchObject({ path: 'entity_id', message: expect.stringMatching(/NUL/) })
      expect(issues({ ...base, region: 'x\u0000' })[0]!.path).toBe('region')
      expect(ok({ ...base, actor_id: 'tab\tbell\u0007esc\u001bdel\u007f' }).actor_id).toBe('tab\tbell\u0007esc\u001bdel\u007f')
    })

    it('refuses a number JSON cannot carry (1e400 parses as Infinity)', () => {
      expect(issues({ ...base, details: JSON.parse('{"n": 1e400}') })[0]).toMatchObject({ path: 'details.n', message: expect.stringMatching(/out of range/) })
    })

    it('refuses nesting thousands deep, in details or an unknown field, without overflowing the stack', () => {
      const deep = JSON.parse(`${'['.repeat(5000)}1${']'.repeat(5000)}`)
      expect(issues({ ...base, details: { deep } })[0]!.message).toMatch(/nested more than 32 levels/)
      expect(issues({ ...base, extra: deep })[0]!.path).toMatch(/^extra/)
      expect(ok({ ...base, details: { a: { b: { c: [1, [2, [3]]] } } } }).details).toEqual({ a: { b: { c: [1, [2, [3]]] } } })
    })

    it('holds unknown fields to the attribute limits, so no field escapes a limit', () => {
      const big = issues({ ...base, blob: 'x'.repeat(10 * 1024 * 1024) })[0]!
      expect(big.path).toBe('')
      expect(big.message).toMatch(/at most 262144/)
      expect(issues({ ...base, note: 'x'.repeat(LIMITS.attributeValue + 1) })[0]).toMatchObject({ path: 'note', message: expect.stringMatching(/at most 4096/) })
      expect(issues({ ...base, ['k'.repeat(300)]: 1 })[0]!.message).toMatch(/1-256 characters \(got 300\)/)
      expect(ok({ ...base, note: 'x'.repeat(LIMITS.attributeValue) }).attributes.note).toHaveLength(LIMITS.attributeValue)
    })

    it(`bounds a whole activity at ${LIMITS.activity} characters of JSON`, () => {
      const attributes = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'v'.repeat(4000)]))
      expect(issues({ ...base, attributes })[0]!.message).toMatch(/characters of JSON, at most 262144/)
      expect(ok({ ...base, attributes: Object.fromEntries(Object.entries(attributes).slice(0, 50)) }).attributes.k49).toHaveLength(4000)
    })

    it('keeps unknown fields named __proto__, constructor and toString as attributes, as own properties', () => {
      const input = JSON.parse('{"action":"a.b","source":"user","__proto__":{"polluted":1},"constructor":"c","toString":"t","attributes":{"__proto__":"p"}}')
      const a = ok(input)
      expect(Object.keys(a.attributes).sort()).toEqual(['__proto__', 'constructor', 'toString'])
      expect(Object.getOwnPropertyDescriptor(a.attributes, '__proto__')!.value).toBe('p')
      expect(a.attributes.constructor).toBe('c')
      expect(Object.getPrototypeOf(a.attributes)).toBe(Object.prototype)
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      expect(JSON.parse(JSON.stringify(a.attributes))).toEqual(JSON.parse('{"__proto__":"p","constructor":"c","toString":"t"}'))
      const d = ok(JSON.parse('{"action":"a.b","source":"user","details":{"__proto__":{"x":1}}}'))
      expect(JSON.stringify(d.details)).toBe('{"__proto__":{"x":1}}')
    })

    it('spells every id one way: upper case is lowered, the nil UUID is an id like any other', () => {
      expect(ok({ ...base, id: '0190A1B2-C3D4-7E5F-8A6B-7C8D9E0F1A2B' }).id).toBe('0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b')
      expect(ok({ ...base, id: '00000000-0000-0000-0000-000000000000' }).id).toBe('00000000-0000-0000-0000-000000000000')
    })
  })
})
