/** GET /api/v1/breakdown: metrics per value of one dimension over a range, from the rollups. */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { ApiContext } from './context.ts'
import { DimensionFilters, TimeRange, resolveRange } from './query-params.ts'
import { replyCached } from './query-cache.ts'
import { route } from './route.ts'
import { alignDown, DIMENSIONS, grainFor, MetricValuesBody, queryBreakdown, queryTotals } from './rollup-query.ts'
import { metricList } from './trends-route.ts'

const DAY = 86_400_000

export const BreakdownQuery = TimeRange.extend(DimensionFilters.shape)
  .extend({
    dimension: z.enum(DIMENSIONS),
    metrics: metricList.default(['count', 'failures', 'error_rate', 'unique_actors']),
    limit: z.coerce.number().int().min(1).max(1000).default(20),
  })
  .strict()

export const BreakdownResponse = z
  .object({
    dimension: z.enum(DIMENSIONS),
    from: z.string(),
    to: z.string(),
    totals: MetricValuesBody,
    items: z.array(MetricValuesBody.extend({ key: z.string(), share: z.number().meta({ description: "this value's share of the range's count, 0-1" }) }).strict()),
  })
  .strict()

export const breakdownRoute: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  route(
    app,
    {
      url: '/breakdown',
      scope: 'read',
      query: BreakdownQuery,
      response: BreakdownResponse,
      summary: 'Metrics per source, status, category, severity, action or service',
      description: '`from` is rounded down to the minute; a `from` on a whole hour or day reads the coarser rollup. The default range is the last 7 whole days up to now.',
    },
    async ({ dimension, metrics, limit, from: f, to: t, ...filters }, request, reply) => {
      const range = resolveRange({ to: t, from: f ?? alignDown((t ?? Date.now()) - 7 * DAY, 'day') }, 7 * DAY)
      const from = alignDown(range.from, 'minute')
      const span = { from, to: range.to, interval: grainFor(from), filters, metrics }
      return replyCached(ctx.cache, request, reply, range.to, async () => {
        const [items, total] = await Promise.all([queryBreakdown(ctx.clickhouse, { ...span, dimension, limit }), queryTotals(ctx.clickhouse, span)])
        const all = total.count ?? 0
        return {
          dimension,
          from: new Date(from).toISOString(),
          to: new Date(range.to).toISOString(),
          totals: total,
          items: items.map(({ key, values }) => ({ key, ...values, share: all > 0 ? (values.count ?? 0) / all : 0 })),
        }
      })
    },
  )
}
