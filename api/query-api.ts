/**
 * The query API: every /api/v1 route, its cache, its per-key rate limit and
 * its OpenAPI document, as one Fastify plugin. The collector registers it
 * beside its receivers (config `api.enabled`); `actline api` serves it alone.
 */
import rateLimit from '@fastify/rate-limit'
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { ActlineError } from '../schemas/errors.ts'
import { activitiesRoute } from './activities-route.ts'
import { anomaliesRoute } from './anomalies-route.ts'
import { auditRoute } from './audit-route.ts'
import { breakdownRoute } from './breakdown-route.ts'
import type { ApiContext } from './context.ts'
import { exportRoute } from './export-route.ts'
import { HealthScoreConfig, healthScoreRoute } from './health-score-route.ts'
import { openapi } from './openapi.ts'
import { CacheStatsResponse, createQueryCache, QueryCacheConfig } from './query-cache.ts'
import { route } from './route.ts'
import { trendsRoute } from './trends-route.ts'

export const API_PREFIX = '/api/v1'

export const RateLimitConfig = z
  .object({
    /** @default true */
    enabled: z.boolean().default(true),
    /** Requests one API key (or, without keys, one client address) may make per window. @default 1200 */
    max: z.number().int().min(1).default(1_200),
    /** @default 60000 */
    window_ms: z.number().int().min(1_000).default(60_000),
  })
  .strict()

export const ApiConfig = z
  .object({
    /** Serve /api/v1 from the collector process. @default true */
    enabled: z.boolean().default(true),
    cache: QueryCacheConfig.prefault({}),
    rate_limit: RateLimitConfig.prefault({}),
    health_score: HealthScoreConfig.prefault({}),
  })
  .strict()

export type ApiConfig = z.output<typeof ApiConfig>

export type QueryApiOptions = Omit<ApiContext, 'cache'> & { config: ApiConfig; version: string }

export const queryApi: FastifyPluginAsync<QueryApiOptions> = async (app, { config, version, clickhouse, postgres, audit, acceptRetention }) => {
  // Named one by one: Fastify's own register options (prefix) must not reach the child plugins.
  const ctx: ApiContext = { clickhouse, ...(postgres && { postgres }), ...(acceptRetention && { acceptRetention }), audit, cache: createQueryCache(config.cache) }
  if (config.rate_limit.enabled) {
    await app.register(rateLimit, {
      max: config.rate_limit.max,
      timeWindow: config.rate_limit.window_ms,
      // After auth (onRequest), so the limit is counted per key, not per address.
      hook: 'preHandler',
      keyGenerator: (request) => (request.principal && request.principal.name !== 'loopback' ? `key:${request.principal.name}` : `ip:${request.ip}`),
      errorResponseBuilder: (_request, limit) =>
        new ActlineError('ACT_ERR_RATE_LIMITED', `rate limit of ${limit.max} requests per ${limit.after} exceeded for this key`, {
          limit: limit.max,
          retry_after_ms: limit.ttl,
        }),
    })
  }
  openapi(app, { title: 'actline query API', version }, '/openapi.json')
  await app.register(activitiesRoute, ctx)
  await app.register(exportRoute, ctx)
  await app.register(trendsRoute, ctx)
  await app.register(breakdownRoute, ctx)
  await app.register(anomaliesRoute, ctx)
  await app.register(healthScoreRoute, { ...ctx, config: config.health_score })
  await app.register(auditRoute, ctx)
  route(
    app,
    { url: '/cache/stats', scope: 'read', query: z.object({}).strict(), response: CacheStatsResponse, summary: 'Query cache hits, misses, size and hit rate' },
    async () => ctx.cache.stats(),
  )
  const cleared = z.object({ cleared: z.number().int().meta({ description: 'entries dropped' }) }).strict()
  route(app, { method: 'POST', url: '/cache/clear', scope: 'admin', query: z.object({}).strict(), response: cleared, summary: 'Drop every cached query result' }, async () => ({
    cleared: ctx.cache.clear(),
  }))
}
