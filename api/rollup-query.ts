/**
 * Reads metric series from the rollups (never the raw table): picks the
 * rollup for an interval, aligns the range to whole buckets, and zero-fills
 * the buckets nothing happened in.
 */
import { z } from 'zod'
import type { ClickHouseReader } from '../schemas/component.ts'
import { actorsSketch, ROLLUPS, type Rollup, type RollupGrain } from '../schemas/clickhouse-schema.ts'
import { ActlineError } from '../schemas/errors.ts'
import { DIMENSION_COLUMN, type DimensionFilters } from './query-params.ts'
import { clickhouseWhere } from './sql-filters.ts'

export const INTERVALS = ['minute', 'hour', 'day', 'week', 'month'] as const
export type Interval = (typeof INTERVALS)[number]

export const METRICS = ['count', 'failures', 'error_rate', 'unique_actors', 'p50', 'p95', 'p99'] as const
export type Metric = (typeof METRICS)[number]
export type MetricValues = Record<Metric, number | null>

/** Metric values as the API returns them: only the metrics asked for. */
export const MetricValuesBody = z
  .object({
    count: z.number().int().optional(),
    failures: z.number().int().optional(),
    error_rate: z.number().optional().meta({ description: 'failures / count; 0 when count is 0' }),
    unique_actors: z.number().int().optional().meta({ description: 'approximate (uniq), merged across buckets' }),
    p50: z.number().nullable().optional().meta({ description: 'duration_ms quantile (t-digest); null with no durations' }),
    p95: z.number().nullable().optional(),
    p99: z.number().nullable().optional(),
  })
  .strict()

export const DIMENSIONS = Object.keys(DIMENSION_COLUMN) as (keyof DimensionFilters)[]
export type Dimension = keyof DimensionFilters

/** Buckets one series may have: beyond it the client asked for a finer interval than the range deserves. */
export const MAX_BUCKETS = 5_000

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

const GRAIN: Record<Interval, RollupGrain> = { minute: 'minute', hour: 'hour', day: 'day', week: 'day', month: 'day' }

/** Weeks start on Monday (ISO 8601), months on the 1st, all in UTC. */
const BUCKET_SQL: Record<Interval, string> = {
  minute: 'bucket',
  hour: 'bucket',
  day: 'bucket',
  week: "toDateTime(toMonday(bucket), 'UTC')",
  month: "toDateTime(toStartOfMonth(bucket), 'UTC')",
}

/** `auto`: the finest interval that keeps a range to a few hundred buckets. */
export function autoInterval(spanMs: number): Interval {
  if (spanMs <= 6 * HOUR) return 'minute'
  if (spanMs <= 14 * DAY) return 'hour'
  if (spanMs <= 400 * DAY) return 'day'
  if (spanMs <= 3 * 366 * DAY) return 'week'
  return 'month'
}

/** Start of the bucket holding `ms`. */
export function alignDown(ms: number, interval: Interval): number {
  switch (interval) {
    case 'minute':
      return ms - (ms % MINUTE)
    case 'hour':
      return ms - (ms % HOUR)
    case 'day':
      return ms - (ms % DAY)
    case 'week': {
      const day = Math.floor(ms / DAY)
      return (day - ((day + 3) % 7)) * DAY // 1970-01-01 was a Thursday
    }
    case 'month': {
      const d = new Date(ms)
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
    }
  }
}

export function nextBucket(ms: number, interval: Interval): number {
  if (interval === 'month') {
    const d = new Date(ms)
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
  }
  return ms + { minute: MINUTE, hour: HOUR, day: DAY, week: 7 * DAY }[interval]
}

/** Every bucket start from the one holding `from` up to (excluding) `to`. */
export function bucketStarts(from: number, to: number, interval: Interval): number[] {
  const starts: number[] = []
  for (let t = alignDown(from, interval); t < to; t = nextBucket(t, interval)) {
    starts.push(t)
    if (starts.length > MAX_BUCKETS) {
      throw new ActlineError('ACT_ERR_VALIDATION', `the range holds more than ${MAX_BUCKETS} ${interval} buckets: use a coarser interval or a shorter range`, {
        param: 'interval',
        interval,
      })
    }
  }
  return starts
}

/**
 * The rollup a query reads: of the interval's grain (minute and hour their
 * own; day, week and month the day's), the one with the fewest dimensions
 * that still has every dimension the query filters or groups by. Fewer
 * dimensions, fewer states to merge: an unfiltered year of days merges 365
 * unique-actor states instead of one per day and key.
 */
export function rollupFor(interval: Interval, filters: DimensionFilters = {}, groupBy?: Dimension): Rollup {
  const needed = (Object.keys(DIMENSION_COLUMN) as Dimension[])
    .filter((d) => filters[d] !== undefined || d === groupBy)
    .map((d) => DIMENSION_COLUMN[d])
  const fits = ROLLUPS.filter((r) => r.grain === GRAIN[interval] && needed.every((c) => (r.dimensions as readonly string[]).includes(c)))
  const rollup = fits.sort((a, b) => a.dimensions.length - b.dimensions.length)[0]
  if (!rollup) throw new Error(`no rollup of grain ${GRAIN[interval]} has ${needed.join(', ')}`)
  return rollup
}

export interface SeriesQuery {
  from: number
  to: number
  interval: Interval
  filters: DimensionFilters
  metrics: readonly Metric[]
  groupBy?: Dimension
  /** Groups kept by total count; the rest are summed into OTHER. */
  top?: number
  /** Start of the period compared with [from, to): its totals are computed in the same pass. */
  previousFrom?: number
}

export interface Series {
  starts: number[]
  /** The whole series, zero-filled, in bucket order. */
  total: MetricValues[]
  /** With groupBy: each kept group's series, and OTHER's. */
  groups?: Map<string, MetricValues[]>
  totals: MetricValues
  previous?: MetricValues
}

export const OTHER = '(other)'

interface Row {
  t?: number
  g?: string
  current?: number
  level?: number
  count: string | number
  failures: string | number
  unique_actors?: string | number
  q?: (number | null)[]
}

const needsQuantiles = (metrics: readonly Metric[]) => metrics.some((m) => m === 'p50' || m === 'p95' || m === 'p99')

/** The aggregate columns a metric list needs; count and failures always (error_rate derives from them). */
function aggregates(metrics: readonly Metric[], rollup: Rollup): string {
  return [
    'sum(events) AS count',
    'sum(failures) AS failures',
    ...(metrics.includes('unique_actors') ? [`${actorsSketch(rollup.actors, 'Merge', 'actors')} AS unique_actors`] : []),
    // An empty t-digest merges to nan, which JSON cannot carry: null instead.
    ...(needsQuantiles(metrics) ? ['arrayMap(x -> if(isNaN(x), NULL, x), quantilesTDigestMerge(0.5, 0.95, 0.99)(duration)) AS q'] : []),
  ].join(', ')
}

function values(row: Row | undefined, metrics: readonly Metric[]): MetricValues {
  const count = Number(row?.count ?? 0)
  const failures = Number(row?.failures ?? 0)
  const all: MetricValues = {
    count,
    failures,
    error_rate: count > 0 ? failures / count : 0,
    unique_actors: Number(row?.unique_actors ?? 0),
    p50: row?.q?.[0] ?? null,
    p95: row?.q?.[1] ?? null,
    p99: row?.q?.[2] ?? null,
  }
  return Object.fromEntries(metrics.map((m) => [m, all[m]])) as MetricValues
}

/**
 * Series, per-group series, period totals and the previous period's totals
 * in one pass over one rollup: GROUP BY GROUPING SETS computes every level
 * the response needs from one read of the table, and grouping() tells the
 * levels apart. (WITH ROLLUP did the same plus a grand total nobody read;
 * interleaved on the benchmark's data the two run within 5% of each other.)
 */
export async function querySeries(reader: ClickHouseReader, q: SeriesQuery): Promise<Series> {
  const starts = bucketStarts(q.from, q.to, q.interval)
  const lowest = Math.min(starts[0]!, q.previousFrom ?? Infinity)
  const { where, params } = clickhouseWhere({ ...q.filters, from: lowest, to: q.to }, 'bucket')
  const rollup = rollupFor(q.interval, q.filters, q.groupBy)
  const table = `${reader.database}.${rollup.table}`
  params.current_from = starts[0]
  let group = ''
  if (q.groupBy) {
    const column = DIMENSION_COLUMN[q.groupBy]
    params.top = q.top ?? 10
    params.other = OTHER
    params.top_from = starts[0]
    group = `, if(${column} IN (SELECT ${column} FROM ${table} WHERE ${where} AND bucket >= fromUnixTimestamp64Milli({top_from:Int64}, 'UTC')
      GROUP BY ${column} ORDER BY sum(events) DESC, ${column} LIMIT {top:UInt32}), ${column}, {other:String}) AS g`
  }
  const keys = q.groupBy ? 'current, t, g' : 'current, t'
  const sets = q.groupBy ? '(current, t, g), (current, t), (current)' : '(current, t), (current)'
  const rows = await reader.rows<Row>(
    `SELECT toUnixTimestamp(${BUCKET_SQL[q.interval]}) * 1000 AS t${group},
  bucket >= fromUnixTimestamp64Milli({current_from:Int64}, 'UTC') AS current,
  grouping(${keys}) AS level, ${aggregates(q.metrics, rollup)}
FROM ${table} WHERE ${where}
GROUP BY GROUPING SETS (${sets})`,
    params,
  )
  // Levels (1 = rolled up, first key highest): detail 0; per bucket 1 (grouped only); per period 1 or 3.
  const bucketLevel = q.groupBy ? 1 : 0
  const periodLevel = q.groupBy ? 3 : 1
  const index = new Map(starts.map((t, i) => [t, i]))
  const total: (Row | undefined)[] = new Array(starts.length).fill(undefined)
  const byGroup = new Map<string, (Row | undefined)[]>()
  let current: Row | undefined
  let previous: Row | undefined
  for (const row of rows) {
    const level = Number(row.level)
    if (level === periodLevel) {
      if (Number(row.current)) current = row
      else previous = row
      continue
    }
    if (!Number(row.current)) continue
    const i = index.get(Number(row.t))
    if (i === undefined) continue
    if (level === bucketLevel) total[i] = row
    else if (level === 0 && q.groupBy) {
      const key = row.g ?? ''
      let series = byGroup.get(key)
      if (!series) byGroup.set(key, (series = new Array(starts.length).fill(undefined)))
      series[i] = row
    }
  }
  const fill = (series: (Row | undefined)[]) => series.map((row) => values(row, q.metrics))
  return {
    starts,
    total: fill(total),
    ...(q.groupBy && { groups: new Map([...byGroup].map(([key, series]) => [key, fill(series)])) }),
    totals: values(current, q.metrics),
    ...(q.previousFrom !== undefined && { previous: values(previous, q.metrics) }),
  }
}

/** One set of metrics over a whole range: uniques and quantiles merge across buckets, they do not add up. */
export async function queryTotals(
  reader: ClickHouseReader,
  q: { from: number; to: number; interval: Interval; filters: DimensionFilters; metrics: readonly Metric[] },
): Promise<MetricValues> {
  const { where, params } = clickhouseWhere({ ...q.filters, from: q.from, to: q.to }, 'bucket')
  const rollup = rollupFor(q.interval, q.filters)
  const [row] = await reader.rows<Row>(`SELECT ${aggregates(q.metrics, rollup)} FROM ${reader.database}.${rollup.table} WHERE ${where}`, params)
  return values(row, q.metrics)
}

/** The coarsest rollup whose buckets `from` starts on: a breakdown over whole days reads days, not minutes. */
export function grainFor(from: number): Interval {
  if (from % DAY === 0) return 'day'
  if (from % HOUR === 0) return 'hour'
  return 'minute'
}

/** Metrics per value of one dimension over a range, largest count first. */
export async function queryBreakdown(
  reader: ClickHouseReader,
  q: { from: number; to: number; interval: Interval; filters: DimensionFilters; metrics: readonly Metric[]; dimension: Dimension; limit: number },
): Promise<{ key: string; values: MetricValues }[]> {
  const { where, params } = clickhouseWhere({ ...q.filters, from: q.from, to: q.to }, 'bucket')
  params.limit = q.limit
  const column = DIMENSION_COLUMN[q.dimension]
  const rollup = rollupFor(q.interval, q.filters, q.dimension)
  const rows = await reader.rows<Row>(
    `SELECT ${column} AS g, ${aggregates(q.metrics, rollup)} FROM ${reader.database}.${rollup.table}
WHERE ${where} GROUP BY g ORDER BY count DESC, g LIMIT {limit:UInt32}`,
    params,
  )
  return rows.map((row) => ({ key: row.g ?? '', values: values(row, q.metrics) }))
}
