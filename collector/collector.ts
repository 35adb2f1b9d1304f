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
import type { ClickHouseReader, Exporter, Ingest, PostgresReader, Refusal } from '../schemas/component.ts'
import { ActlineError } from '../schemas/errors.ts'
import type { createClickHouseExporter } from '../exporters/clickhouse-exporter.ts'
import type { createPostgresExporter } from '../exporters/postgres-exporter.ts'
import { createReceiverStats } from './activity-receiver.ts'
import { createRecentIds } from './recent-ids.ts'
import { buildApp, listeningUrl } from './app.ts'
import { createBatchProcessor, type BatchProcessor } from './batch-processor.ts'
import type { Config } from './config.ts'
import { createDeadLetter, damagedLogWriter } from './dead-letter.ts'
import type { StoreStatus } from './health.ts'
import { createMemoryLimiter } from './memory-limiter.ts'
import { withRetry } from './retrying-exporter.ts'
import { writePidFile } from './pid-file.ts'
import { createStoreExporters } from './store-exporters.ts'
import { startInBackground, type StoreStart } from './store-start.ts'
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
  starting: (name: string) => string | undefined = () => undefined,
): { clickhouse: ClickHouseReader; postgres?: PostgresReader } {
  // A store not connected yet is a 503 the client can retry, not a 500.
  const ready = (name: string) => {
    const why = starting(name)
    if (why !== undefined) throw new ActlineError('ACT_ERR_STORAGE_UNAVAILABLE', `the ${name} store is not connected yet (${why}); retry later`, { store: name }, { 'retry-after': '5' })
  }
  return {
    clickhouse: {
      database: config.exporters.clickhouse.database,
      rows: async (sql, params, signal) => (ready('clickhouse'), clickhouse.reader().rows(sql, params, signal)),
    },
    ...(postgres && { postgres: { rows: async (sql, params) => (ready('postgres'), postgres.reader().rows(sql, params)) } }),
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

/** How long ingest answers 503 after the log failed a write, before a request may try again. */
const STORAGE_PAUSE_MS = 1_000

export async function createCollector(config: Config, options: { logger?: FastifyBaseLogger } = {}): Promise<Collector> {
  const logger = options.logger ?? createLogger(config.server.log_level)
  const exporters: Exporter[] = []
  /** Exporter name -> the batch processor reading the log for it. */
  const queues = new Map<string, BatchProcessor>()
  const starts = new Map<string, StoreStart>()
  const deadLetterDir = join(config.data_dir, 'dead-letter')
  const wal = createWriteAheadLog(config.wal, logger, damagedLogWriter(deadLetterDir))
  const memory = createMemoryLimiter(config.pipeline.memory_limiter, {
    reclaim: async () => void (await Promise.all(exporters.map((e) => e.reclaimMemory?.()))),
    exporting: () => [...queues.values()].some((q) => q.exporting),
    logger,
  })

  const add = (exporter: Exporter, accepts?: (a: Activity) => boolean) => {
    const processor = createBatchProcessor({
      config: config.pipeline.batch,
      wal,
      exporter: withRetry(exporter, config.pipeline.retry, logger),
      ...(accepts && { accepts }),
      deadLetter: createDeadLetter(deadLetterDir, exporter.name),
      logger,
    })
    exporters.push(exporter)
    queues.set(exporter.name, processor)
  }
  const created = createStoreExporters(config, logger)
  for (const store of created) add(store.exporter, store.accepts)
  const clickhouse = created.find((s) => s.name === 'clickhouse')?.exporter as ReturnType<typeof createClickHouseExporter> | undefined
  const postgres = created.find((s) => s.name === 'postgres')?.exporter as ReturnType<typeof createPostgresExporter> | undefined
  const starting = (name: string) => (starts.has(name) ? starts.get(name)!.pending() : 'not started')

  const recentIds = createRecentIds(config.pipeline.dedup)
  const receiverStats = createReceiverStats()
  let accepting = false
  const ingest: Ingest = {
    refusal(): Refusal | undefined {
      const failure = wal.health().writeFailure
      if (failure && Date.now() - failure.at < STORAGE_PAUSE_MS) {
        return { kind: 'storage', reason: `the write-ahead log cannot be written: ${failure.code === 'ENOSPC' ? 'its disk is full' : failure.code}` }
      }
      if (wal.retainedBytes() > config.wal.max_bytes) return { kind: 'backpressure', reason: 'write-ahead log full' }
      if (memory.over()) return { kind: 'backpressure', reason: 'memory limit' }
      return undefined
    },
    admitted: () => memory.admitted(),
    write: async (activities) => {
      const { fresh, commit } = recentIds.admit(activities)
      receiverStats.duplicates += activities.length - fresh.length
      if (fresh.length > 0) await wal.append(fresh)
      commit()
    },
  }
  const stores: StoreStatus[] = exporters.map((exporter) => ({ exporter, starting: () => starting(exporter.name), queue: queues.get(exporter.name)! }))
  if (config.api.enabled && !clickhouse) logger.warn('api: not served: the query API reads ClickHouse, and the clickhouse exporter is disabled')
  const app = await buildApp({
    logger,
    receivers: config.receivers,
    timeouts: config.server,
    ingest,
    auth: config.auth,
    ...(config.api.enabled &&
      clickhouse && {
        api: {
          config: config.api,
          version: VERSION,
          ...storeReaders(config, clickhouse, postgres, starting),
          // An export's own audit activity takes the path every activity takes.
          audit: (activity) => ingest.write([activity]),
        },
      }),
    stores,
    queues,
    wal,
    memory,
    receiverStats,
    isAccepting: () => accepting,
  })

  let stopped: Promise<void> | undefined
  let removePid: (() => void) | undefined

  async function stop(): Promise<void> {
    const deadline = Date.now() + config.server.shutdown_timeout_ms
    accepting = false
    logger.info({ pending: pendingByExporter() }, 'shutting down: no new requests, exporting what the log holds')
    // Requests already inside finish (and reach the log) before draining.
    await app.close()
    // A store still connecting gets until the deadline; its rows stay in the log.
    await Promise.race([Promise.all([...starts.values()].map((s) => s.stop())), sleep(Math.max(0, deadline - Date.now()))])
    await Promise.all([...queues.values()].map((q) => q.shutdown(deadline)))
    memory.stop()
    await wal.close()
    await Promise.allSettled(exporters.map((e) => e.shutdown()))
    removePid?.()
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
        removePid = writePidFile(config.data_dir)
        await wal.open()
        await Promise.all([...queues.values()].map((q) => q.register()))
        // A client's retry of a request answered just before a crash or
        // restart must be stored once too: remember the ids the log's tail holds.
        const restored = recentIds.restore(await wal.tail(recentIds.capacity))
        if (restored > 0) logger.info({ ids: restored }, 'dedup: remembered the recent ids of the write-ahead log')
        await app.listen({ host: config.server.host, port: config.server.port })
      } catch (err) {
        memory.stop()
        await wal.close().catch(() => {})
        throw err
      }
      // Ingest works from here: the log takes it, whatever the stores do.
      accepting = true
      // Stores start behind the log: one that is down does not keep the
      // collector from accepting (store-start.ts).
      for (const exporter of exporters) {
        starts.set(exporter.name, startInBackground(exporter, config.pipeline.retry, logger, () => queues.get(exporter.name)!.start()))
      }
      // The first attempt gets a moment, so a healthy start logs one line and serves reads at once.
      await Promise.race([Promise.all([...starts.values()].map((s) => s.firstAttempt)), sleep(STARTUP_GRACE_MS)])
      const host = config.server.host
      const { port, url } = listeningUrl(app, host, config.server.port)
      const waiting = exporters.filter((e) => starting(e.name) !== undefined).map((e) => e.name)
      logger.info({ url, exporters: exporters.map((e) => e.name), ...(waiting.length && { not_connected: waiting }) }, `actline collector listening on ${url}`)
      announceAccess(logger, config, url)
      return { host, port, url }
    },

    shutdown() {
      stopped ??= stop()
      return stopped
    },
  }
}

/** Longest start() waits for the stores' first attempt before it reports listening. */
const STARTUP_GRACE_MS = 60_000

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}
