import { describe, expect, it } from 'vitest'
import type { Activity } from '../../schemas/activity.ts'
import { uuidv7 } from '../../schemas/uuidv7.ts'
import { createRecentIds, RecentIdsConfig } from '../../collector/pipeline/dedup.ts'

// Readable names for real ids: the table keeps an id's 128 bits.
const named = new Map<string, string>()
const idOf = (name: string) => named.get(name) ?? (named.set(name, uuidv7()), named.get(name)!)
const act = (name: string) => ({ id: idOf(name) }) as Activity
const ids = (as: Activity[]) => as.map((a) => [...named].find(([, id]) => id === a.id)![0])
type Recent = ReturnType<typeof createRecentIds>
/** What a request would write: admitted, not yet committed. */
const fresh = (recent: Recent, as: Activity[]) => recent.admit(as).fresh
/** A request written to the log: admitted and committed. */
const store = (recent: Recent, as: Activity[]) => recent.admit(as).commit()

describe('recent ids', () => {
  it('remembers again, after a restart, the ids of the log tail received within the window', () => {
    let t = 1_000_000
    const recent = createRecentIds(RecentIdsConfig.parse({ window_ms: 60_000 }), () => t)
    const old = { ...act('old'), received_at: t - 120_000 }
    const young = { ...act('young'), received_at: t - 5_000 }
    expect(recent.restore([old, young])).toBe(1)
    expect(ids(fresh(recent, [act('old'), act('young')]))).toEqual(['old'])
  })

  it('remembers the nil UUID like any other id (the all-zero slot marks empty slots)', () => {
    const recent = createRecentIds(RecentIdsConfig.parse({}))
    const nil = { id: '00000000-0000-0000-0000-000000000000' } as Activity
    const first = recent.admit([nil, nil])
    expect(first.fresh).toHaveLength(1)
    first.commit()
    expect(recent.admit([nil]).fresh).toHaveLength(0)
  })

  it('drops an id stored moments ago, and a second copy inside one request', () => {
    const recent = createRecentIds(RecentIdsConfig.parse({}))
    const first = fresh(recent, [act('a'), act('b'), act('a')])
    expect(ids(first)).toEqual(['a', 'b'])
    store(recent, first)
    expect(ids(fresh(recent, [act('b'), act('c')]))).toEqual(['c'])
  })

  it('does not hide the retry of a write that failed: ids count once remembered', () => {
    const recent = createRecentIds(RecentIdsConfig.parse({}))
    expect(ids(fresh(recent, [act('a')]))).toEqual(['a'])
    // the log append failed: nothing remembered, so the retry goes through
    expect(ids(fresh(recent, [act('a')]))).toEqual(['a'])
  })

  it('forgets an id after the window, and keeps at most max_ids', () => {
    let now = 0
    const recent = createRecentIds(RecentIdsConfig.parse({ window_ms: 10_000, max_ids: 4 }), () => now)
    store(recent, [act('a')])
    now = 5_000
    expect(ids(fresh(recent, [act('a')]))).toEqual([]) // rotated: 'a' is in the previous generation
    now = 10_000
    expect(ids(fresh(recent, [act('a')]))).toEqual(['a']) // rotated again: gone
    // max_ids 4: two generations of 2
    store(recent, [act('p'), act('q'), act('r'), act('s'), act('t')])
    expect(ids(fresh(recent, [act('p'), act('q'), act('r'), act('s'), act('t')]))).toEqual(['p', 'q'])
  })

  it('tells apart ids that differ in any of their 128 bits, and remembers many', () => {
    const recent = createRecentIds(RecentIdsConfig.parse({ max_ids: 100_000 }))
    const base = '0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6071'
    // The same id with one hex digit changed, at each of its 32 digits.
    const digits = [...base].flatMap((ch, i) => (ch === '-' ? [] : [i]))
    const variants = digits.map((i) => base.slice(0, i) + (base[i] === 'f' ? '0' : 'f') + base.slice(i + 1))
    store(recent, [{ id: base } as Activity])
    expect(variants).toHaveLength(32)
    expect(fresh(recent, variants.map((id) => ({ id }) as Activity))).toHaveLength(32)
    expect(fresh(recent, [{ id: base } as Activity])).toEqual([])
    const many = Array.from({ length: 40_000 }, () => ({ id: uuidv7() }) as Activity)
    store(recent, many)
    expect(fresh(recent, many)).toEqual([])
    expect(fresh(recent, [{ id: uuidv7() } as Activity])).toHaveLength(1)
  })

  it('is off with max_ids 0', () => {
    const recent = createRecentIds(RecentIdsConfig.parse({ max_ids: 0 }))
    store(recent, [act('a')])
    expect(ids(fresh(recent, [act('a'), act('a')]))).toEqual(['a', 'a'])
  })
})
