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
import type { Exporter } from '../schemas/component.ts'
import { createClickHouseExporter } from '../exporters/clickhouse-exporter.ts'
import { createPostgresExporter } from '../exporters/postgres-exporter.ts'
import { createReceiverStats } from './activity-receiver.ts'
import { createRecentIds } from './recent-ids.ts'
import { buildApp } from './app.ts'
import { auditPredicate } from './audit-router.ts'
import { createBatchProcessor, type BatchProcessor } from './batch-processor.ts'
import type { Config } from './config.ts'
import { createDeadLetter } from './dead-letter.ts'
import { createMemoryLimiter } from './memory-limiter.ts'
import { withRetry } from './retrying-exporter.ts'
import { createWriteAheadLog } from './write-ahead-log.ts'

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

export async function createCollector(config: Config, options: { logger?: FastifyBaseLogger } = {}): Promise<Collector> {
  const logger = options.logger ?? createLogger(config.server.log_level)
  const exporters: Exporter[] = []
  /** Exporter name -> the batch processor reading the log for it. */
  const queues = new Map<string, BatchProcessor>()
  const wal = createWriteAheadLog(config.wal, logger)
  const memory = createMemoryLimiter(config.pipeline.memory_limiter)

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
  if (config.exporters.clickhouse.enabled) add(createClickHouseExporter(config.exporters.clickhouse, logger))
  if (config.exporters.postgres.enabled) add(createPostgresExporter(config.exporters.postgres, logger), auditPredicate(config.pipeline.audit_route))

  const recentIds = createRecentIds(config.pipeline.dedup)
  const receiverStats = createReceiverStats()
  let accepting = false
  const app = await buildApp({
    logger,
    receivers: config.receivers,
    ingest: {
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
    },
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
      const address = app.server.address()
      const port = typeof address === 'object' && address ? address.port : config.server.port
      const host = config.server.host
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
      logger.info({ url, exporters: exporters.map((e) => e.name) }, `actline collector listening on ${url}`)
      return { host, port, url }
    },

    shutdown() {
      stopped ??= stop()
      return stopped
    },
  }
}
