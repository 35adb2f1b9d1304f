import { describe, expect, it } from 'vitest'
import { rollupFor } from '../../api/rollup-query.ts'

describe('which rollup a query reads', () => {
  it('an unfiltered, ungrouped day/week/month query reads the day total, the smallest', () => {
    for (const interval of ['day', 'week', 'month'] as const) expect(rollupFor(interval).table).toBe('activities_by_day_total')
  })

  it('a query that filters or groups by a dimension reads a rollup keyed by it', () => {
    expect(rollupFor('day', { tenant: ['t1'] }).table).toBe('activities_by_day')
    expect(rollupFor('day', {}, 'action').table).toBe('activities_by_day')
    expect(rollupFor('month', { status: ['failure'] }, 'service').table).toBe('activities_by_day')
  })

  it('minute and hour queries read their own grain', () => {
    expect(rollupFor('minute').table).toBe('activities_by_minute')
    expect(rollupFor('hour', { source: ['user'] }).table).toBe('activities_by_hour')
  })
})
