/**
 * GET /api/v1/health/score: one 0-100 number for "is what we collect
 * healthy", over the last `window_minutes`. docs/query-api.md documents it:
 *   errors  50 points: full at 0% failures, none at `error_rate_budget` or more;
 *   latency 30 points: full while p95 duration <= `latency_target_ms`, none at 4x it;
 *   lag     20 points: full while ingest lag <= `lag_target_ms`, none at 10x it.
 * Each falls linearly between. Ingest lag is how late events reach the
 * collector: p95 of received_at - timestamp. A part with no data scores full.
 */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { ApiContext } from './context.ts'
import { replyCached } from './query-cache.ts'
import { route } from './route.ts'
import { alignDown, queryTotals } from './rollup-query.ts'

export const HealthScoreConfig = z
  .object({
    /** @default 15 */
    window_minutes: z.number().int().min(1).max(1440).default(15),
    /** Failure rate that scores zero error points. @default 0.05 */
    error_rate_budget: z.number().positive().max(1).default(0.05),
    /** @default 1000 */
    latency_target_ms: z.number().positive().default(1_000),
    /** @default 5000 */
    lag_target_ms: z.number().positive().default(5_000),
  })
  .strict()

export type HealthScoreConfig = z.output<typeof HealthScoreConfig>

const HealthQuery = z.object({}).strict()

const Part = z.object({ value: z.number().nullable(), points: z.number() }).strict()

export const HealthScoreResponse = z
  .object({
    score: z.number().int().min(0).max(100),
    status: z.enum(['healthy', 'degraded', 'unhealthy']),
    window: z.object({ from: z.string(), to: z.string() }).strict(),
    events: z.number().int(),
    parts: z
      .object({
        errors: Part.meta({ description: 'error rate, up to 50 points' }),
        latency: Part.meta({ description: 'p95 duration_ms, up to 30 points' }),
        lag: Part.meta({ description: 'p95 of received_at - timestamp in ms, up to 20 points' }),
      })
      .strict(),
  })
  .strict()

/** `weight` while `value <= good`, 0 at `bad`, linear between; full when there is no value. */
export function points(weight: number, value: number | null, good: number, bad: number): number {
  if (value === null || value <= good) return weight
  return weight * Math.max(0, 1 - (value - good) / (bad - good))
}

export function status(score: number): 'healthy' | 'degraded' | 'unhealthy' {
  return score >= 90 ? 'healthy' : score >= 70 ? 'degraded' : 'unhealthy'
}

export const healthScoreRoute: FastifyPluginAsync<ApiContext & { config: HealthScoreConfig }> = async (app, { config, ...ctx }) => {
  route(app, { url: '/health/score', scope: 'read', query: HealthQuery, response: HealthScoreResponse, summary: 'A 0-100 health score from error rate, latency and ingest lag' }, async (_q, request, reply) => {
    const to = Date.now()
    const from = alignDown(to - config.window_minutes * 60_000, 'minute')
    return replyCached(ctx.cache, request, reply, to, async () => {
      const [totals, [arrival]] = await Promise.all([
        queryTotals(ctx.clickhouse, { from, to, interval: 'minute', filters: {}, metrics: ['count', 'error_rate', 'p95'] }),
        ctx.clickhouse.rows<{ lag: number | null }>(
          `SELECT if(count() = 0, NULL, quantile(0.95)(dateDiff('millisecond', timestamp, received_at))) AS lag
FROM ${ctx.clickhouse.database}.activities WHERE timestamp >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')`,
          { from },
        ),
      ])
      const lag = arrival?.lag === null || arrival?.lag === undefined ? null : Math.max(0, Number(arrival.lag))
      const errorRate = totals.count ? totals.error_rate : null
      const parts = {
        errors: { value: errorRate, points: points(50, errorRate, 0, config.error_rate_budget) },
        latency: { value: totals.p95, points: points(30, totals.p95, config.latency_target_ms, 4 * config.latency_target_ms) },
        lag: { value: lag, points: points(20, lag, config.lag_target_ms, 10 * config.lag_target_ms) },
      }
      const score = Math.round(parts.errors.points + parts.latency.points + parts.lag.points)
      return { score, status: status(score), window: { from: new Date(from).toISOString(), to: new Date(to).toISOString() }, events: totals.count, parts }
    })
  })
}
