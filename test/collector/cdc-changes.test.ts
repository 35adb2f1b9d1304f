/**
 * Change-data capture's pure parts, without a server: PostgreSQL's text made
 * values both stores hold (values.ts), context messages taken whole or not at
 * all (changes.ts), and the record of a huge transaction's pieces
 * (progress.ts). test/integration/cdc-hostile.test.ts tries the same on the
 * real server, through pgoutput.
 */
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseActivity } from '../../schemas/activity.ts'
import { parseContext, parseSession, toActivities, type Change, type Origin } from '../../collector/receivers/postgres-cdc/changes.ts'
import { createProgress } from '../../collector/receivers/postgres-cdc/progress.ts'
import { columnReader } from '../../collector/receivers/postgres-cdc/values.ts'
import { tempDir } from '../helpers/stores.ts'

const read = (typeOid: number, text: string, maxBytes = 8192) => columnReader({ typeOid }, maxBytes)(text)
const bytes = (s: string) => new TextEncoder().encode(s)

describe('values from PostgreSQL text', () => {
  it('keeps what JSON numbers cannot carry as PostgreSQL wrote it', () => {
    expect(['NaN', 'Infinity', '-Infinity', '-0', '1.5', '1e+308'].map((t) => read(701, t))).toEqual(['NaN', 'Infinity', '-Infinity', '-0', 1.5, 1e308])
    expect(read(700, '-Infinity')).toBe('-Infinity')
    expect([read(20, '9223372036854775807'), read(1700, 'NaN'), read(23, '-2147483648'), read(16, 't'), read(16, 'f')]).toEqual(['9223372036854775807', 'NaN', -2147483648, true, false])
  })

  it('writes times as ISO 8601 with every digit, and what ISO cannot say as sent', () => {
    expect(read(1184, '2026-12-07 21:00:00.123456+00')).toBe('2026-12-07T21:00:00.123456Z')
    expect(read(1184, '2026-12-07 21:00:00+05:30')).toBe('2026-12-07T21:00:00+05:30')
    expect(read(1114, '2026-12-07 21:00:00')).toBe('2026-12-07T21:00:00')
    for (const t of ['infinity', '-infinity', '294276-12-31 23:59:59+00', '4713-01-01 00:00:00+00 BC', '1880-01-01 00:00:00-00:17:30']) expect(read(1184, t)).toBe(t)
  })

  it('keeps a json document a store could not hold parsed as its text, and a plain one parsed', () => {
    expect(read(114, '{"s":"\\ud800"}')).toBe('{"s":"\\ud800"}')
    expect(read(3802, '{"n": "\\u0000"}')).toBe('{"n": "\\u0000"}')
    expect(read(114, '{"big": 1e400}')).toBe('{"big": 1e400}')
    expect(read(114, `${'['.repeat(40)}${']'.repeat(40)}`)).toBe(`${'['.repeat(40)}${']'.repeat(40)}`)
    expect(read(3802, '{"a": [1, "😀"]}')).toEqual({ a: [1, '😀'] })
  })

  it('parses plain arrays, and keeps the text of one with a value JSON cannot carry', () => {
    expect([read(1007, '{1,2,3}'), read(1009, '{a,"b c",NULL}'), read(1022, '{NaN,1}'), read(1022, '{-0}')]).toEqual([[1, 2, 3], ['a', 'b c', null], '{NaN,1}', '{-0}'])
  })

  it('makes a value over max_value_bytes a marker of its type, size and hash', () => {
    const text = 'é'.repeat(5000)
    expect(read(25, text)).toEqual({ type: 'text', bytes: 10_000, sha256: createHash('sha256').update(text).digest('hex') })
    expect(read(25, 'é'.repeat(4096))).toBe('é'.repeat(4096))
    expect(columnReader({ typeOid: 99_999, typeName: 'mood' }, 256)('x'.repeat(300))).toMatchObject({ type: 'mood', bytes: 300 })
  })
})

describe('context messages', () => {
  it('takes a valid one, ignoring what only the trigger may say', () => {
    expect(parseContext(bytes('{"actor_id":"u-1","tenant_id":"acme","trace_id":"' + 'ab'.repeat(16) + '","db_role":"postgres","application_name":"x","other":1}'))).toEqual({ actor_id: 'u-1', tenant_id: 'acme', trace_id: 'ab'.repeat(16) })
  })

  it.each([
    ['a lone surrogate', '{"actor_id":"\\ud800evil"}'],
    ['a control character', '{"actor_id":"a\\u0007b"}'],
    ['a number', '{"actor_id":42}'],
    ['an empty string', '{"tenant_id":""}'],
    ['over 256 characters', JSON.stringify({ actor_id: 'a'.repeat(257) })],
    ['a trace id of the wrong form', '{"actor_id":"u-1","trace_id":"xyz"}'],
    ['an array', '[{"actor_id":"u-1"}]'],
    ['no JSON', 'actor_id=u-1'],
    ['over 4 KiB', JSON.stringify({ actor_id: 'u-1', pad: 'x'.repeat(5000) })],
  ])('ignores one whole with %s', (_what, text) => {
    expect(parseContext(bytes(text))).toBeUndefined()
  })

  it('ignores a message that is not valid UTF-8', () => {
    expect(parseContext(new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]))).toBeUndefined()
  })

  it("takes a session message only with the trigger's token", () => {
    const message = (token: string) => bytes(JSON.stringify({ db_role: 'app', application_name: 'svc', token }))
    expect(parseSession(message('s3cret'), 's3cret')).toEqual({ db_role: 'app', application_name: 'svc' })
    expect(parseSession(message('guess'), 's3cret')).toBeUndefined()
    expect(parseSession(message('s3cret'), undefined)).toBeUndefined()
  })
})

describe('row changes as activities', () => {
  const origin: Origin = { systemId: '7', database: 'shop', slot: 'actline', primaryKeys: new Map([['public.docs', ['id']]]) }
  const relation = { schema: 'public', name: 'docs', keyColumns: ['id'], replicaIdentity: 'default' as const }

  it('names the unchanged TOASTed columns of an update, and every activity is one the collector accepts', () => {
    const changes: Change[] = [
      { tag: 'insert', relation, new: { id: 1, body: { type: 'text', bytes: 9000, sha256: 'ab' }, ratio: 'NaN' } },
      { tag: 'update', relation, key: null, old: null, new: { id: 1, body: undefined, ratio: '-0' } },
    ]
    const activities = toActivities({ xid: 9, commitLsn: '0/16B3748', commitTime: 1_796_000_000_000_000n, changes, offset: 5000 }, origin, () => false)
    expect(activities[1]!.details).toEqual({ new: { id: 1, ratio: '-0' }, unchanged: ['body'] })
    expect(activities.map((a) => a.attributes!['db.change_index'])).toEqual([5000, 5001])
    for (const a of activities) expect(parseActivity(a, Date.now()).ok).toBe(true)
  })
})

describe('the record of a huge transaction', () => {
  it('says how much of which commit the log holds, and nothing after a torn write', async () => {
    const dir = tempDir()
    const file = join(dir.path, 'receivers', 'postgres-cdc-actline.json')
    await createProgress(file).save({ commit_lsn: '7/0/16B3748', written: 10_000 })
    const again = createProgress(file)
    expect([again.writtenOf('7/0/16B3748'), again.writtenOf('7/0/16B3749')]).toEqual([10_000, 0])
    writeFileSync(file, '{"commit_lsn":"7/0/16B3748","writ')
    expect(createProgress(file).writtenOf('7/0/16B3748')).toBe(0)
    dir.remove()
  })
})
