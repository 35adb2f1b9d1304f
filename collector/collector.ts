/**
 * Wires the pipeline: receiver -> write-ahead log -> one batch processor per
 * exporter reading the log from its own cursor (PostgreSQL's through the
 * audit route) -> retrying exporter -> store. Owns start order and the
 * graceful shutdown: stop accepting, export what the log holds, close.
 */
import { join } from 'node:path'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { pino } from 'pino'
import type { Activity } from '../schemas/activity.ts'
import type { ClickHouseReader, Exporter, Ingest, PostgresReader } from '../schemas/component.ts'
import { createClickHouseExporter } from '../exporters/clickhouse-exporter.ts'
import { createPostgresExporter } from '../exporters/postgres-exporter.ts'
import { createReceiverStats } from './activity-receiver.ts'
import { createRecentIds } from './recent-ids.ts'
import { buildApp, listeningUrl } from './app.ts'
import { auditPredicate } from './audit-router.ts'
import { createBatchProcessor, type BatchProcessor } from './batch-processor.ts'
import type { Config } from './config.ts'
import { createDeadLetter } from './dead-letter.ts'
import { createMemoryLimiter } from './memory-limiter.ts'
import { withRetry } from './retrying-exporter.ts'
import { createWriteAheadLog } from './write-ahead-log.ts'
import { VERSION } from './version.ts'

export interface Collector {
  readonly app: FastifyInstance
  readonly logger: FastifyBaseLogger
  /** The stores' exporters, for components that read them (the query API, tests). */
  readonly exporters: readonly Exporter[]
  /** Start stores, then listen. Resolves with the bound address. */
  start(): Promise<{ host: string; port: number; url: string }>
  /** Graceful and idempotent; bounded by server.shutdown_timeout_ms. */
  shutdown(): Promise<void>
  /** Rows queued or in flight, per exporter. */
  pending(): Record<string, number>
}

/** Secrets that must never reach a log line, whatever logs them. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  '*.password',
  'config.exporters.*.password',
]

export function createLogger(level: string): FastifyBaseLogger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '***' } }) as unknown as FastifyBaseLogger
}

/**
 * The query API's view of the stores. Resolved per call: the exporters open
 * their connections in start(), after the routes are registered.
 */
export function storeReaders(
  config: Config,
  clickhouse: ReturnType<typeof createClickHouseExporter>,
  postgres: ReturnType<typeof createPostgresExporter> | undefined,
): { clickhouse: ClickHouseReader; postgres?: PostgresReader } {
  return {
    clickhouse: { database: config.exporters.clickhouse.database, rows: (sql, params, signal) => clickhouse.reader().rows(sql, params, signal) },
    ...(postgres && { postgres: { rows: (sql, params) => postgres.reader().rows(sql, params) } }),
  }
}

/** Say at start who may call: with no keys, anything on this machine, and nothing else. */
export function announceAccess(logger: FastifyBaseLogger, config: Config, url: string): void {
  if (config.auth.keys.length === 0) {
    logger.warn({ url }, `no API keys configured: every route is open, so the collector listens on loopback only (${config.server.host}); add auth.keys to serve other hosts`)
  } else {
    logger.info({ keys: config.auth.keys.map((k) => ({ name: k.name, scopes: k.scopes })) }, `API keys required: ${config.auth.keys.length} configured`)
  }
}

export async function createCollector(config: Config, options: { logger?: FastifyBaseLogger } = {}): Promise<Collector> {
  const logger = options.logger ?? createLogger(config.server.log_level)
  const exporters: Exporter[] = []
  /** Exporter name -> the batch processor reading the log for it. */
  const queues = new Map<string, BatchProcessor>()
  const wal = createWriteAheadLog(config.wal, logger)
  const memory = createMemoryLimiter(config.pipeline.memory_limiter, async () => {
    await Promise.all(exporters.map((e) => e.reclaimMemory?.()))
  })

  const add = (exporter: Exporter, accepts?: (a: Activity) => boolean) => {
    const processor = createBatchProcessor({
      config: config.pipeline.batch,
      wal,
      exporter: withRetry(exporter, config.pipeline.retry, logger),
      ...(accepts && { accepts }),
      deadLetter: createDeadLetter(join(config.data_dir, 'dead-letter'), exporter.name),
      logger,
    })
    exporters.push(exporter)
    queues.set(exporter.name, processor)
  }
  const clickhouse = config.exporters.clickhouse.enabled ? createClickHouseExporter(config.exporters.clickhouse, logger) : undefined
  const postgres = config.exporters.postgres.enabled ? createPostgresExporter(config.exporters.postgres, logger) : undefined
  if (clickhouse) add(clickhouse)
  if (postgres) add(postgres, auditPredicate(config.pipeline.audit_route))

  const recentIds = createRecentIds(config.pipeline.dedup)
  const receiverStats = createReceiverStats()
  let accepting = false
  const ingest: Ingest = {
    refusal() {
      if (wal.retainedBytes() > config.wal.max_bytes) return 'write-ahead log full'
      if (memory.over()) return 'memory limit'
      return undefined
    },
    write: async (activities) => {
      const { fresh, commit } = recentIds.admit(activities)
      receiverStats.duplicates += activities.length - fresh.length
      if (fresh.length > 0) await wal.append(fresh)
      commit()
    },
  }
  if (config.api.enabled && !clickhouse) logger.warn('api: not served: the query API reads ClickHouse, and the clickhouse exporter is disabled')
  const app = await buildApp({
    logger,
    receivers: config.receivers,
    ingest,
    auth: config.auth,
    ...(config.api.enabled &&
      clickhouse && {
        api: {
          config: config.api,
          version: VERSION,
          ...storeReaders(config, clickhouse, postgres),
          // An export's own audit activity takes the path every activity takes.
          audit: (activity) => ingest.write([activity]),
        },
      }),
    exporters,
    queues,
    wal,
    receiverStats,
    isAccepting: () => accepting,
  })

  let stopped: Promise<void> | undefined

  async function stop(): Promise<void> {
    const deadline = Date.now() + config.server.shutdown_timeout_ms
    accepting = false
    logger.info({ pending: pendingByExporter() }, 'shutting down: no new requests, exporting what the log holds')
    // Requests already inside finish (and reach the log) before draining.
    await app.close()
    await Promise.all([...queues.values()].map((q) => q.shutdown(deadline)))
    memory.stop()
    await wal.close()
    await Promise.allSettled(exporters.map((e) => e.shutdown()))
    logger.info('shutdown complete')
  }

  function pendingByExporter(): Record<string, number> {
    return Object.fromEntries([...queues].map(([name, q]) => [name, q.pending]))
  }

  return {
    app,
    logger,
    exporters,
    pending: pendingByExporter,

    async start() {
      try {
        await Promise.all(exporters.map((e) => e.start()))
        await wal.open()
        await Promise.all([...queues.values()].map((q) => q.start()))
        await app.listen({ host: config.server.host, port: config.server.port })
      } catch (err) {
        memory.stop()
        await Promise.allSettled([wal.close(), ...exporters.map((e) => e.shutdown())])
        throw err
      }
      accepting = true
      const host = config.server.host
      const { port, url } = listeningUrl(app, host, config.server.port)
      logger.info({ url, exporters: exporters.map((e) => e.name) }, `actline collector listening on ${url}`)
      announceAccess(logger, config, url)
      return { host, port, url }
    },

    shutdown() {
      stopped ??= stop()
      return stopped
    },
  }
}
