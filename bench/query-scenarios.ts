/**
 * What bench:query and bench:query-ab time, and how they summarize it: trends (each uncached, and in
 * bench:query also cached) and first pages of /activities, over the year of
 * synthetic data that ends at `end` (a midnight).
 */
const DAY = 86_400_000

export interface Scenario {
  name: string
  path: string
  /** Trends are also timed from the cache; a first page is not cached. */
  cacheable: boolean
}

export function queryScenarios(end: number): Scenario[] {
  const year = `from=${new Date(end - 365 * DAY).toISOString()}&to=${new Date(end).toISOString()}`
  const month = `from=${new Date(end - 30 * DAY).toISOString()}&to=${new Date(end).toISOString()}`
  const week = `from=${new Date(end - 7 * DAY).toISOString()}`
  const all = 'count,failures,error_rate,unique_actors,p50,p95,p99'
  return [
    { name: 'trends 365 d by day (count, failures, error_rate)', path: `/trends?${year}&interval=day`, cacheable: true },
    { name: 'trends 365 d by day, all 7 metrics', path: `/trends?${year}&interval=day&metrics=${all}`, cacheable: true },
    { name: 'trends 365 d by day, all 7 metrics, tenant=t3', path: `/trends?${year}&interval=day&tenant=t3&metrics=${all}`, cacheable: true },
    { name: 'trends 30 d by hour', path: `/trends?${month}&interval=hour`, cacheable: true },
    { name: 'trends 365 d by day, group_by action top 10', path: `/trends?${year}&interval=day&group_by=action&top=10`, cacheable: true },
    { name: 'activities first page: source=user, status=failure, 7 d, limit 100', path: `/activities?${week}&source=user&status=failure&limit=100`, cacheable: false },
    { name: 'activities first page: tenant=t3, action=order.create, limit 100', path: `/activities?tenant=t3&action=order.create&limit=100`, cacheable: false },
    { name: 'activities first page: actor=u42 (bloom filter), 30 d', path: `/activities?${month}&actor=u42&limit=100`, cacheable: false },
  ]
}

/** The middle value of unsorted values (the upper one of an even count). */
export function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[values.length >> 1]!
}

/** The q-quantile of sorted values (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
}
