/**
 * The collector: the receivers and the query API in front of the pipeline
 * (service.ts). Owns start order and the graceful shutdown: stop accepting,
 * export what the log holds, close.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Exporter } from '../schemas/component.ts'
import { PID_FILE, type Config } from './config.ts'
import { join } from 'node:path'
import { livePid, writePidFile } from '../lib/pid-file.ts'
import { announceAccess, buildApp, listeningUrl } from './server/app.ts'
import { createLogger } from './server/logger.ts'
import { createService } from './service.ts'
import { VERSION } from './version.ts'
import { retentionFilter } from './audit/config.ts'

export interface Collector {
  readonly app: FastifyInstance
  readonly logger: FastifyBaseLogger
  /** The stores' exporters, for components that read them (the query API, tests). */
  readonly exporters: readonly Exporter[]
  /** Start stores, then listen. Resolves with the bound address. */
  start(): Promise<{ host: string; port: number; url: string; clickhouseHttp?: string }>
  /** Graceful and idempotent; bounded by server.shutdown_timeout_ms. */
  shutdown(): Promise<void>
  /** Rows queued or in flight, per exporter. */
  pending(): Record<string, number>
}

/** Longest start() waits for the stores' first attempt before it reports listening. */
const STARTUP_GRACE_MS = 60_000

export async function createCollector(config: Config, options: { logger?: FastifyBaseLogger } = {}): Promise<Collector> {
  const logger = options.logger ?? createLogger(config.server.log_level)
  const service = createService(config, { logger })
  const acceptRetention = retentionFilter(config.audit)
  let accepting = false
  if (config.api.enabled && !service.readers) logger.warn('api: not served: the query API reads ClickHouse, and the clickhouse exporter is disabled')
  const app = await buildApp({
    logger,
    receivers: config.receivers,
    timeouts: config.server,
    ingest: service.ingest,
    auth: config.auth,
    ...(config.api.enabled &&
      service.readers && {
        api: {
          config: config.api,
          version: VERSION,
          ...service.readers,
          ...(acceptRetention && { acceptRetention }),
          // An export's own audit activity takes the path every activity takes.
          audit: (activity) => service.ingest.write([activity]),
        },
      }),
    stores: service.stores,
    ...(service.anchors && { auditHeads: service.anchors.heads }),
    wal: service.wal,
    memory: service.memory,
    receiverStats: service.receiverStats,
    receiverStateDir: join(config.data_dir, 'receivers'),
    isAccepting: () => accepting,
  })

  let stopped: Promise<void> | undefined
  let removePid: (() => void) | undefined

  async function stop(): Promise<void> {
    const deadline = Date.now() + config.server.shutdown_timeout_ms
    accepting = false
    logger.info({ pending: service.pending() }, 'shutting down: no new requests, exporting what the log holds')
    // Requests already inside finish (and reach the log) before draining.
    await app.close()
    await service.shutdown(deadline)
    removePid?.()
    logger.info('shutdown complete')
  }

  return {
    app,
    logger,
    exporters: service.exporters,
    pending: service.pending,

    async start() {
      // Two collectors on one data_dir would interleave one write-ahead log and fight over the embedded stores.
      const pidFile = join(config.data_dir, PID_FILE)
      const holder = livePid(pidFile)
      if (holder !== undefined && holder !== process.pid) {
        throw new Error(`another actline process (pid ${holder}) runs on data_dir ${config.data_dir}: give each collector its own data_dir (if pid ${holder} is not actline, remove ${pidFile})`)
      }
      removePid = writePidFile(pidFile)
      await service.open()
      try {
        await app.listen({ host: config.server.host, port: config.server.port })
      } catch (err) {
        await service.shutdown(Date.now())
        throw err
      }
      // Ingest works from here: the log takes it, whatever the stores do.
      accepting = true
      // The first attempt gets a moment, so a healthy start logs one line and serves reads at once.
      await service.startExporters(STARTUP_GRACE_MS)
      const clickhouseHttp = await service.startClickHouseHttp()
      const host = config.server.host
      const { port, url } = listeningUrl(app, host, config.server.port)
      const waiting = service.pipelines.filter((p) => p.starting() !== undefined).map((p) => p.name)
      logger.info({ url, exporters: service.pipelines.map((p) => p.name), ...(waiting.length && { not_connected: waiting }) }, `actline collector listening on ${url}`)
      announceAccess(logger, config, url)
      return { host, port, url, ...(clickhouseHttp && { clickhouseHttp }) }
    },

    shutdown() {
      stopped ??= stop()
      return stopped
    },
  }
}
