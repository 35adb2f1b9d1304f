/**
 * `actline api`: the query API without the pipeline, for running readers
 * apart from writers (several API replicas in front of one ClickHouse
 * server, or reading a stopped collector's embedded stores). It opens the
 * stores through the exporters (which also applies migrations, rollups
 * included) and writes an export's audit activity straight to them.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Activity } from '../schemas/activity.ts'
import type { Exporter } from '../schemas/component.ts'
import { createClickHouseExporter } from '../exporters/clickhouse-exporter.ts'
import { createPostgresExporter } from '../exporters/postgres-exporter.ts'
import { API_PREFIX, queryApi } from '../api/query-api.ts'
import { auditPredicate } from './audit-router.ts'
import { announceAccess, storeReaders } from './collector.ts'
import type { Config } from './config.ts'
import { createServer, listeningUrl } from './app.ts'
import { health } from './health.ts'
import { startInBackground, type StoreStart } from './store-start.ts'
import { VERSION } from './version.ts'

export interface ApiServer {
  readonly app: FastifyInstance
  start(): Promise<{ url: string }>
  shutdown(): Promise<void>
}

export async function createApiServer(config: Config, logger: FastifyBaseLogger): Promise<ApiServer> {
  if (!config.exporters.clickhouse.enabled) throw new Error('actline api reads ClickHouse: exporters.clickhouse.enabled must be true')
  const clickhouse = createClickHouseExporter(config.exporters.clickhouse, logger)
  const postgres = config.exporters.postgres.enabled ? createPostgresExporter(config.exporters.postgres, logger) : undefined
  const stores: Exporter[] = postgres ? [clickhouse, postgres] : [clickhouse]
  const toPostgres = auditPredicate(config.pipeline.audit_route)
  const starts = new Map<string, StoreStart>()
  const starting = (name: string) => (starts.has(name) ? starts.get(name)!.pending() : 'not started')
  let ready = false

  async function audit(activity: Activity): Promise<void> {
    const targets = postgres && toPostgres(activity) ? stores : [clickhouse]
    for (const store of targets) {
      const result = await store.export([activity])
      if (result.status !== 'success') throw result.error
    }
  }

  const app = await createServer(logger, config.auth, config.server)
  await app.register(health, { stores: stores.map((exporter) => ({ exporter, starting: () => starting(exporter.name) })), isAccepting: () => ready })
  await app.register(queryApi, { prefix: API_PREFIX, config: config.api, version: VERSION, ...storeReaders(config, clickhouse, postgres, starting), audit })

  return {
    app,
    async start() {
      await app.listen({ host: config.server.host, port: config.server.port })
      // A store that is down answers 503 until it is up (store-start.ts).
      for (const store of stores) starts.set(store.name, startInBackground(store, config.pipeline.retry, logger))
      await Promise.all([...starts.values()].map((s) => s.firstAttempt))
      ready = true
      const { url } = listeningUrl(app, config.server.host, config.server.port)
      logger.info({ url }, `actline query API listening on ${url}${API_PREFIX}`)
      announceAccess(logger, config, url)
      return { url }
    },
    async shutdown() {
      ready = false
      await app.close()
      await Promise.all([...starts.values()].map((s) => s.stop()))
      await Promise.allSettled(stores.map((s) => s.shutdown()))
    },
  }
}
