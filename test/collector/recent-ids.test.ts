import { describe, expect, it } from 'vitest'
import type { Activity } from '../../schemas/activity.ts'
import { createRecentIds, RecentIdsConfig } from '../../collector/recent-ids.ts'

const act = (id: string) => ({ id }) as Activity
const ids = (as: Activity[]) => as.map((a) => a.id)

describe('recent ids', () => {
  it('drops an id stored moments ago, and a second copy inside one request', () => {
    const recent = createRecentIds(RecentIdsConfig.parse({}))
    const first = recent.fresh([act('a'), act('b'), act('a')])
    expect(ids(first)).toEqual(['a', 'b'])
    recent.remember(first)
    expect(ids(recent.fresh([act('b'), act('c')]))).toEqual(['c'])
  })

  it('does not hide the retry of a write that failed: ids count once remembered', () => {
    const recent = createRecentIds(RecentIdsConfig.parse({}))
    expect(ids(recent.fresh([act('a')]))).toEqual(['a'])
    // the log append failed: nothing remembered, so the retry goes through
    expect(ids(recent.fresh([act('a')]))).toEqual(['a'])
  })

  it('forgets an id after the window, and keeps at most max_ids', () => {
    let now = 0
    const recent = createRecentIds(RecentIdsConfig.parse({ window_ms: 10_000, max_ids: 4 }), () => now)
    recent.remember([act('a')])
    now = 5_000
    expect(ids(recent.fresh([act('a')]))).toEqual([]) // rotated: 'a' is in the previous generation
    now = 10_000
    expect(ids(recent.fresh([act('a')]))).toEqual(['a']) // rotated again: gone
    // max_ids 4: two generations of 2
    recent.remember([act('p'), act('q'), act('r'), act('s'), act('t')])
    expect(ids(recent.fresh([act('p'), act('q'), act('r'), act('s'), act('t')]))).toEqual(['p', 'q'])
  })

  it('is off with max_ids 0', () => {
    const recent = createRecentIds(RecentIdsConfig.parse({ max_ids: 0 }))
    recent.remember([act('a')])
    expect(ids(recent.fresh([act('a'), act('a')]))).toEqual(['a', 'a'])
  })
})
