/**
 * The pipeline every actline process that writes runs, built from the
 * config and the exporter registry: write-ahead log -> one delivery path
 * per enabled exporter (pipeline/exporter-helper.ts) -> store, behind one
 * Ingest (admission, dedup, the log). The collector puts its receivers in
 * front of it; `actline api` only the query API, whose export audits take
 * this same path (the Collector's `service`: pipelines out of components).
 */
import { join } from 'node:path'
import { sleep } from '../lib/sleep.ts'
import type { ClickHouseReader, Exporter, Ingest, Logger, PostgresReader, ReadOnlySql, SqlLimits } from '../schemas/component.ts'
import { ActlineError } from '../schemas/errors.ts'
import { enabledExporters } from './components.ts'
import type { Config } from './config.ts'
import { damagedLogWriter } from './pipeline/dead-letter.ts'
import { createRecentIds } from './pipeline/dedup.ts'
import { createExporterPipeline, type ExporterPipeline } from './pipeline/exporter-helper.ts'
import { createIngest } from './pipeline/ingest.ts'
import { createMemoryLimiter, type MemoryLimiter } from './pipeline/memory-limiter.ts'
import { createReceiverStats, type ReceiverStats } from './receivers/stats.ts'
import type { StoreStatus } from './server/health.ts'
import { createWriteAheadLog, type WriteAheadLog } from './wal/write-ahead-log.ts'
import { createClickHouseHttp } from './extensions/clickhouse-http/server.ts'
import { createAnchorService, type AnchorService } from './audit/anchor-service.ts'

export interface Service {
  readonly ingest: Ingest
  readonly wal: WriteAheadLog
  readonly memory: MemoryLimiter
  readonly receiverStats: ReceiverStats
  readonly pipelines: readonly ExporterPipeline[]
  /** The stores' exporters, for components that read them (the query API, tests). */
  readonly exporters: readonly Exporter[]
  /** Each store as /readyz and /metrics see it. */
  readonly stores: readonly StoreStatus[]
  /** The periodic anchor of the audit trail's chain heads; undefined without a store that serves the audit trail. */
  readonly anchors: AnchorService | undefined
  /** The query API's view of the stores; undefined when no enabled exporter serves analytics reads. */
  readonly readers: { clickhouse: ClickHouseReader; postgres?: PostgresReader } | undefined
  /**
   * Serve ClickHouse's HTTP interface for the embedded analytics store
   * (`server.clickhouse_http`), read-only; nothing when the store is a
   * server, disabled, or the endpoint is off. Resolves with its URL.
   */
  startClickHouseHttp(): Promise<string | undefined>
  /** Open the log, register every cursor, remember the log tail's ids. Ingest works from here. */
  open(): Promise<void>
  /** Start every store in the background; resolves after each one's first attempt, or `graceMs`. */
  startExporters(graceMs: number): Promise<void>
  /** The shutdown order of exporter-helper.ts for every exporter, then the log, then the stores. */
  shutdown(deadline: number): Promise<void>
  pending(): Record<string, number>
}

export interface ServiceOptions {
  logger: Logger
  /** Where the log lives; the collector's `wal.dir` unless another process (actline api) needs its own. */
  walDir?: string
}

export function createService(config: Config, { logger, walDir = config.wal.dir }: ServiceOptions): Service {
  const deadLetterDir = join(config.data_dir, 'dead-letter')
  const wal = createWriteAheadLog({ ...config.wal, dir: walDir }, logger, damagedLogWriter(deadLetterDir))
  const pipelines: ExporterPipeline[] = []
  const memory = createMemoryLimiter(config.pipeline.memory_limiter, {
    reclaim: async () => void (await Promise.all(pipelines.map((p) => p.exporter.reclaimMemory?.()))),
    exporting: () => pipelines.some((p) => p.queue.exporting),
    logger,
  })
  for (const { exporter, accepts, batch } of enabledExporters(config, logger)) {
    pipelines.push(createExporterPipeline({ exporter, ...(accepts && { accepts }), wal, batch, retry: config.pipeline.retry, deadLetterDir, logger }))
  }
  const auditStore = pipelines.find((p) => p.exporter.auditReader)
  const anchors = auditStore && createAnchorService({ config: config.audit, dataDir: config.data_dir, db: () => auditReaderOf(auditStore), logger })
  const recentIds = createRecentIds(config.pipeline.dedup)
  const receiverStats = createReceiverStats()
  const ingest = createIngest({ wal, maxBytes: config.wal.max_bytes, memory, recentIds, onDuplicates: (n) => (receiverStats.duplicates += n) })
  let closeEndpoint = async () => {}

  return {
    ingest,
    wal,
    memory,
    receiverStats,
    pipelines,
    exporters: pipelines.map((p) => p.exporter),
    stores: pipelines.map((p) => ({ exporter: p.exporter, starting: () => p.starting(), queue: p.queue })),
    readers: queryReaders(pipelines),
    anchors,

    async startClickHouseHttp() {
      const store = pipelines.find((p) => p.exporter.analyticsReader && p.exporter.openReadOnlySql)
      if (!store || !config.server.clickhouse_http.enabled) return undefined
      const session = readOnlySession(store, config.server.clickhouse_http)
      const server = createClickHouseHttp({ config: config.server.clickhouse_http, auth: config.auth, browser: config.server, logger, session: session.get, overMemory: () => memory.over() })
      closeEndpoint = async () => {
        await server.close()
        await session.close()
      }
      return server.start()
    },

    async open() {
      try {
        await wal.open()
        await Promise.all(pipelines.map((p) => p.register()))
        // A client's retry of a request answered just before a crash or
        // restart must be stored once too: remember the ids the log's tail holds.
        const restored = recentIds.restore(await wal.tail(recentIds.capacity))
        if (restored > 0) logger.info({ ids: restored }, 'dedup: remembered the recent ids of the write-ahead log')
      } catch (err) {
        memory.stop()
        await wal.close().catch(() => {})
        throw err
      }
    },

    async startExporters(graceMs) {
      // Stores start behind the log: one that is down does not keep ingest
      // from working (pipeline/store-start.ts).
      const started = Promise.all(pipelines.map((p) => p.start()))
      anchors?.start()
      await (Number.isFinite(graceMs) ? Promise.race([started, sleep(graceMs)]) : started)
    },

    async shutdown(deadline) {
      anchors?.stop()
      await closeEndpoint()
      await Promise.all(pipelines.map((p) => p.drain(deadline)))
      memory.stop()
      await wal.close()
      await Promise.allSettled(pipelines.map((p) => p.close()))
    },

    pending: () => Object.fromEntries(pipelines.map((p) => [p.name, p.queue.pending])),
  }
}

/**
 * The query API reads the exporter that serves analytics (and the audit
 * trail, where one serves it), resolved per call: stores connect after the
 * routes are registered. A store not connected yet is a 503 the client can
 * retry, not a 500.
 */
function queryReaders(pipelines: readonly ExporterPipeline[]): Service['readers'] {
  const analytics = pipelines.find((p) => p.exporter.analyticsReader)
  if (!analytics) return undefined
  const audit = pipelines.find((p) => p.exporter.auditReader)
  return {
    clickhouse: {
      get database() {
        ready(analytics)
        return analytics.exporter.analyticsReader!().database
      },
      rows: async (sql, params, signal) => (ready(analytics), analytics.exporter.analyticsReader!().rows(sql, params, signal)),
    },
    ...(audit && { postgres: { rows: async (sql, params) => auditReaderOf(audit).rows(sql, params) } }),
  }
}

/** A store that is not connected yet is a 503 the client can retry, not a 500. */
function ready(p: ExporterPipeline): void {
  const why = p.starting()
  if (why !== undefined) throw new ActlineError('ACT_ERR_STORAGE_UNAVAILABLE', `the ${p.name} store is not connected yet (${why}); retry later`, { store: p.name }, { 'retry-after': '5' })
}

function auditReaderOf(p: ExporterPipeline): PostgresReader {
  ready(p)
  return p.exporter.auditReader!()
}

/** The store's read-only session, opened on first use once the store has started. */
function readOnlySession(store: ExporterPipeline, limits: SqlLimits): { get(): Promise<ReadOnlySql>; close(): Promise<void> } {
  let opened: Promise<ReadOnlySql> | undefined
  return {
    get() {
      const why = store.starting()
      if (why !== undefined) return Promise.reject(Object.assign(new Error(`the ${store.name} store is not connected yet (${why}); retry later. (NETWORK_ERROR)`), { storeCode: 210 }))
      opened ??= store.exporter.openReadOnlySql!(limits).catch((err: unknown) => {
        opened = undefined
        throw err
      })
      return opened
    },
    async close() {
      await (await opened?.catch(() => undefined))?.close()
    },
  }
}
