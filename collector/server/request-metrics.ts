/**
 * Request latency by route, for /metrics: an onResponse hook on the whole
 * app (fastify-plugin, so it is not encapsulated). Labels stay bounded: the
 * route pattern (never the raw URL), the method, and the status class.
 */
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { createHistogram, type Histogram } from '../../lib/histogram.ts'

export interface RequestSeries {
  labels: { method: string; route: string; status: string }
  histogram: Histogram
}

export type RequestMetrics = Map<string, RequestSeries>

export function createRequestMetrics(): RequestMetrics {
  return new Map()
}

const plugin: FastifyPluginAsync<{ metrics: RequestMetrics }> = async (app, { metrics }) => {
  app.addHook('onResponse', async (request, reply) => {
    // A request no route matched is one series, whatever its URL.
    const route = request.routeOptions.url ?? 'unmatched'
    const status = `${Math.floor(reply.statusCode / 100)}xx`
    const key = `${request.method} ${route} ${status}`
    let series = metrics.get(key)
    if (!series) metrics.set(key, (series = { labels: { method: request.method, route, status }, histogram: createHistogram() }))
    series.histogram.observe(reply.elapsedTime / 1000)
  })
}

export const requestMetrics = fp(plugin, { name: 'actline-request-metrics' })
