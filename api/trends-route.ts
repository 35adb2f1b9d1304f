/**
 * GET /api/v1/trends: metrics per bucket from the rollups, zero-filled, with
 * the analysis a dashboard would otherwise compute itself: 7- and 30-point
 * moving averages, a least-squares line with R², a forecast with a 95% band,
 * and the change against the period just before.
 */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { ApiContext } from './context.ts'
import { DimensionFilters, TimeRange, resolveRange } from './query-params.ts'
import { replyCached } from './query-cache.ts'
import { route } from './route.ts'
import { alignDown, autoInterval, DIMENSIONS, nextBucket, INTERVALS, METRICS, MetricValuesBody, querySeries, type Metric, type MetricValues } from './rollup-query.ts'
import { forecast, linearRegression, movingAverage, percentChange } from './trend-analysis.ts'

const DAY = 86_400_000

export const metricList = z
  .preprocess((v) => (Array.isArray(v) ? v.join(',') : v), z.string())
  .transform((s) => [...new Set(s.split(',').map((x) => x.trim()).filter(Boolean))])
  .pipe(z.array(z.enum(METRICS)).min(1))
  .meta({ description: `comma-separated: ${METRICS.join(', ')}` })

export const TrendsQuery = TimeRange.extend(DimensionFilters.shape)
  .extend({
    interval: z.enum([...INTERVALS, 'auto']).default('auto').meta({ description: 'bucket size; auto picks by range (docs/query-api.md)' }),
    metrics: metricList.default(['count', 'failures', 'error_rate']),
    group_by: z.enum(DIMENSIONS).optional(),
    top: z.coerce.number().int().min(1).max(100).default(10).meta({ description: 'groups kept by total count with group_by; the rest are summed as (other)' }),
    forecast: z.coerce.number().int().min(0).max(366).default(0).meta({ description: 'buckets to forecast past the range' }),
  })
  .strict()

const time = z.string().meta({ description: 'ISO 8601, UTC' })
const Bucket = MetricValuesBody.extend({ time: time.meta({ description: 'start of the bucket, ISO 8601 UTC' }) }).strict()
const perMetric = <T extends z.ZodType>(value: T) => z.partialRecord(z.enum(METRICS), value).meta({ description: 'one entry per metric asked for' })

export const TrendsResponse = z
  .object({
    interval: z.enum(INTERVALS),
    from: time,
    to: time,
    metrics: z.array(z.enum(METRICS)),
    buckets: z.array(Bucket).meta({ description: 'every bucket of the range, zero-filled' }),
    group_by: z.enum(DIMENSIONS).optional(),
    groups: z.array(z.object({ key: z.string(), buckets: z.array(Bucket) }).strict()).optional().meta({ description: 'with group_by: the top groups by count, then (other)' }),
    totals: MetricValuesBody,
    previous_period: z.object({ from: time, to: time, totals: MetricValuesBody }).strict(),
    change_percent: perMetric(z.number().nullable()),
    analysis: perMetric(
      z
        .object({
          moving_average_7: z.array(z.number().nullable()),
          moving_average_30: z.array(z.number().nullable()),
          regression: z.object({ slope: z.number(), intercept: z.number(), r2: z.number().nullable() }).strict().nullable(),
          forecast: z.array(z.object({ time, value: z.number(), lower: z.number(), upper: z.number() }).strict()).meta({ description: 'with a 95% prediction band' }),
        })
        .strict(),
    ),
  })
  .strict()

type Values = MetricValues[]

function analyse(series: Values, metric: Metric, next: number[]) {
  const values = series.map((v) => v[metric])
  const fit = linearRegression(values)
  return {
    moving_average_7: movingAverage(values, 7),
    moving_average_30: movingAverage(values, 30),
    regression: fit && { slope: fit.slope, intercept: fit.intercept, r2: fit.r2 },
    forecast: fit ? forecast(fit, series.length, next.length).map((p, i) => ({ time: iso(next[i]!), value: p.value, lower: p.lower, upper: p.upper })) : [],
  }
}

const iso = (ms: number) => new Date(ms).toISOString()

function buckets(starts: number[], series: Values) {
  return starts.map((t, i) => ({ time: iso(t), ...series[i] }))
}

export const trendsRoute: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  route(
    app,
    {
      url: '/trends',
      scope: 'read',
      query: TrendsQuery,
      response: TrendsResponse,
      summary: 'Metrics over time from the rollups, with moving averages, regression, forecast and period change',
    },
    async (q, request, reply) => {
      const range = resolveRange(q, 7 * DAY, 20 * 366 * DAY)
      const interval = q.interval === 'auto' ? autoInterval(range.to - range.from) : q.interval
      const { interval: _i, metrics, group_by, top, forecast: steps, from: _f, to: _t, ...filters } = q
      // Whole buckets: the range starts where its first bucket does, and the
      // previous period is as long, ending there.
      const from = alignDown(range.from, interval)
      const to = range.to
      const previousFrom = alignDown(from - (to - from), interval)
      return replyCached(ctx.cache, request, reply, to, async () => {
        const series = await querySeries(ctx.clickhouse, { from, to, interval, filters, metrics, previousFrom, ...(group_by && { groupBy: group_by, top }) })
        const next: number[] = []
        for (let i = 0, t = series.starts.at(-1) ?? from; i < steps; i++) next.push((t = nextBucket(t, interval)))
        return {
          interval,
          from: iso(from),
          to: iso(to),
          metrics,
          buckets: buckets(series.starts, series.total),
          ...(series.groups && {
            group_by,
            groups: [...series.groups].map(([key, s]) => ({ key, buckets: buckets(series.starts, s) })),
          }),
          totals: series.totals,
          previous_period: { from: iso(previousFrom), to: iso(from), totals: series.previous },
          change_percent: Object.fromEntries(metrics.map((m) => [m, percentChange(series.totals[m], series.previous![m])])),
          analysis: Object.fromEntries(metrics.map((m) => [m, analyse(series.total, m, next)])),
        }
      })
    },
  )
}
