/**
 * GET /api/v1/anomalies: buckets whose value is far from the series' median,
 * measured in median absolute deviations (robust to the very spikes it looks
 * for). The bucket still open is left out: it is low only because it is not over.
 */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { ApiContext } from './context.ts'
import { DimensionFilters, TimeRange, resolveRange } from './query-params.ts'
import { replyCached } from './query-cache.ts'
import { route } from './route.ts'
import { alignDown, autoInterval, INTERVALS, METRICS, nextBucket, querySeries } from './rollup-query.ts'
import { robustOutliers } from './trend-analysis.ts'

const DAY = 86_400_000

export const AnomaliesQuery = TimeRange.extend(DimensionFilters.shape)
  .extend({
    metric: z.enum(METRICS).default('count'),
    interval: z.enum([...INTERVALS, 'auto']).default('auto'),
    threshold: z.coerce.number().positive().max(100).default(3.5).meta({ description: 'modified z-score beyond which a bucket is anomalous' }),
  })
  .strict()

export const AnomaliesResponse = z
  .object({
    metric: z.enum(METRICS),
    interval: z.enum(INTERVALS),
    from: z.string(),
    to: z.string(),
    threshold: z.number(),
    buckets: z.number().int().meta({ description: 'closed buckets the median and MAD are computed over' }),
    median: z.number().nullable(),
    mad: z.number().nullable(),
    anomalies: z.array(
      z.object({ time: z.string(), value: z.number(), score: z.number().meta({ description: 'modified z-score' }), direction: z.enum(['above', 'below']) }).strict(),
    ),
  })
  .strict()

export const anomaliesRoute: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  route(
    app,
    { url: '/anomalies', scope: 'read', query: AnomaliesQuery, response: AnomaliesResponse, summary: 'Buckets beyond a robust (median/MAD) threshold' },
    async ({ metric, interval: i, threshold, from: f, to: t, ...filters }, request, reply) => {
      const range = resolveRange({ from: f, to: t }, 7 * DAY, 20 * 366 * DAY)
      const interval = i === 'auto' ? autoInterval(range.to - range.from) : i
      const from = alignDown(range.from, interval)
      return replyCached(ctx.cache, request, reply, range.to, async () => {
        const { starts, total } = await querySeries(ctx.clickhouse, { from, to: range.to, interval, filters, metrics: [metric] })
        const now = Date.now()
        const series = total.map((v, k) => (nextBucket(starts[k]!, interval) > Math.min(now, range.to) ? null : v[metric]))
        const result = robustOutliers(series, threshold)
        return {
          metric,
          interval,
          from: new Date(from).toISOString(),
          to: new Date(range.to).toISOString(),
          threshold,
          buckets: series.filter((v) => v !== null).length,
          median: result?.median ?? null,
          mad: result?.mad ?? null,
          anomalies: (result?.outliers ?? []).map((o) => ({
            time: new Date(starts[o.index]!).toISOString(),
            value: o.value,
            score: o.score,
            direction: o.score > 0 ? 'above' : 'below',
          })),
        }
      })
    },
  )
}
