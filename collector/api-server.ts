/**
 * `actline api`: the query API without the receivers, for running readers
 * apart from writers (several API replicas in front of one ClickHouse
 * server, or reading a stopped collector's embedded stores). It runs the
 * same pipeline as the collector (service.ts): the stores open through
 * their exporters (which applies migrations, rollups included), and an
 * export's audit activity goes through the log, dedup, routing and retry
 * like any other. Its log is its own (`<wal.dir>-api`), so it never shares
 * one with a collector on the same data directory.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { API_PREFIX, queryApi } from '../api/query-api.ts'
import type { Config } from './config.ts'
import { announceAccess, createServer, listeningUrl } from './server/app.ts'
import { webUi } from './server/web-ui.ts'
import { health } from './server/health.ts'
import { createService } from './service.ts'
import { VERSION } from './version.ts'
import { retentionFilter } from './audit/config.ts'

export interface ApiServer {
  readonly app: FastifyInstance
  start(): Promise<{ url: string }>
  shutdown(): Promise<void>
}

export async function createApiServer(config: Config, logger: FastifyBaseLogger): Promise<ApiServer> {
  const service = createService(config, { logger, walDir: `${config.wal.dir}-api` })
  const readers = service.readers
  if (!readers) throw new Error('actline api reads ClickHouse: exporters.clickhouse.enabled must be true')
  let ready = false

  const app = await createServer(logger, config.auth, config.server)
  await app.register(health, { stores: service.stores, isAccepting: () => ready })
  await app.register(queryApi, { prefix: API_PREFIX, config: config.api, version: VERSION, ...readers, ...retentionOption(config), audit: (activity) => service.ingest.write([activity]) })
  await app.register(webUi)
  let stopped: Promise<void> | undefined

  return {
    app,
    async start() {
      await service.open()
      await app.listen({ host: config.server.host, port: config.server.port })
      // A store that is down answers 503 until it is up (pipeline/store-start.ts).
      await service.startExporters(Infinity)
      await service.startClickHouseHttp()
      ready = true
      const { url } = listeningUrl(app, config.server.host, config.server.port)
      logger.info({ url }, `actline query API listening on ${url}${API_PREFIX}`)
      announceAccess(logger, config, url)
      return { url }
    },
    shutdown() {
      stopped ??= (async () => {
        ready = false
        await app.close()
        await service.shutdown(Date.now() + config.server.shutdown_timeout_ms)
      })()
      return stopped
    },
  }
}

function retentionOption(config: Config) {
  const acceptRetention = retentionFilter(config.audit)
  return acceptRetention ? { acceptRetention } : {}
}
