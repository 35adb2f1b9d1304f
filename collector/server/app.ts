/**
 * Builds the Fastify app from the pipeline's parts. It never listens:
 * collector.ts does, so tests can inject requests without a socket.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Ingest } from '../../schemas/component.ts'
import { RECEIVERS } from '../receivers/index.ts'
import type { ReceiverType } from '../receivers/receiver-type.ts'
import { receiverWarnings, type ReceiverStats } from '../receivers/stats.ts'
import { ActlineError, installErrorHandler } from './errors.ts'
import { browserRefusal, type BrowserPolicy } from '../../api/browser-guard.ts'
import { health, type StoreStatus } from './health.ts'
import type { MemoryLimiter } from '../pipeline/memory-limiter.ts'
import { selfTelemetry } from './metrics.ts'
import { createRequestMetrics, requestMetrics } from './request-metrics.ts'
import { webUi } from './web-ui.ts'
import type { WriteAheadLog } from '../wal/write-ahead-log.ts'
import { auth, type AuthConfig } from '../../api/auth.ts'
import { API_PREFIX, queryApi, type QueryApiOptions } from '../../api/query-api.ts'

export interface AppOptions {
  logger: FastifyBaseLogger
  /** Each receiver's config section, by type. */
  receivers: { [K in keyof typeof RECEIVERS]: Parameters<(typeof RECEIVERS)[K]['enabled']>[0] }
  timeouts: ServerTimeouts
  ingest: Ingest
  stores: readonly StoreStatus[]
  wal: Pick<WriteAheadLog, 'retainedBytes' | 'health'>
  memory: Pick<MemoryLimiter, 'state'>
  receiverStats: ReceiverStats
  /** Where a receiver keeps what it must remember across restarts (made by the receiver that needs it). */
  receiverStateDir: string
  isAccepting(): boolean
  auth: AuthConfig
  /** The query API, when served by this process. */
  api?: QueryApiOptions
  /** The audit chain heads /metrics shows, from the periodic anchor. */
  auditHeads?: () => readonly { chain: string; seq: bigint }[]
}

/**
 * The server every actline process runs (the collector, `actline api`): its
 * logging and closing policy, the one error handler, and API keys.
 */
export interface ServerTimeouts extends BrowserPolicy {
  headers_timeout_ms: number
  request_timeout_ms: number
  keep_alive_timeout_ms: number
}

export async function createServer(logger: FastifyBaseLogger, authConfig: AuthConfig, timeouts: ServerTimeouts): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger,
    // A client that trickles its headers or body (slowloris) holds a socket
    // and a parser: bound both. Node checks these every
    // connectionsCheckingInterval (30 s by default), so check every second.
    requestTimeout: timeouts.request_timeout_ms,
    keepAliveTimeout: timeouts.keep_alive_timeout_ms,
    http: { headersTimeout: timeouts.headers_timeout_ms, connectionsCheckingInterval: 1_000 },
    // Per-request lines at 50k events/s would drown the log; errors are
    // still logged by the error handler with the request id.
    logController: new LogController({ disableRequestLogging: true }),
    // The receiver sets its own, larger limit on its routes.
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  })
  installErrorHandler(app)
  // Before keys are looked at: a browser page of another site gets nothing, not even a 401.
  app.addHook('onRequest', async (request) => {
    const refusal = browserRefusal(request, timeouts)
    if (refusal !== undefined) throw new ActlineError('ACT_ERR_FORBIDDEN', refusal, { origin: request.headers.origin ?? null, host: request.headers.host ?? null })
  })
  // First, so every route after it is gated by the scope it declares.
  await app.register(auth, { config: authConfig })
  return app
}

/** Where a listening server can be reached: the configured host, the port bound (0 picks one). */
export function listeningUrl(app: FastifyInstance, host: string, configuredPort: number): { port: number; url: string } {
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : configuredPort
  return { port, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` }
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = await createServer(options.logger, options.auth, options.timeouts)
  const requests = createRequestMetrics()
  await app.register(requestMetrics, { metrics: requests })
  await app.register(health, { stores: options.stores, ingest: options.ingest, isAccepting: options.isAccepting, warnings: () => receiverWarnings(options.receiverStats) })
  await app.register(selfTelemetry, { receiver: options.receiverStats, stores: options.stores, wal: options.wal, memory: options.memory, requests, ...(options.auditHeads && { auditHeads: options.auditHeads }) })
  for (const [name, t] of Object.entries(RECEIVERS)) {
    const type = t as ReceiverType<unknown>
    const config = options.receivers[name as keyof typeof RECEIVERS]
    if (type.enabled(config)) await app.register(type.plugin, { config, ingest: options.ingest, stats: options.receiverStats, stateDir: options.receiverStateDir })
  }
  if (options.api) {
    await app.register(queryApi, { ...options.api, prefix: API_PREFIX })
    await app.register(webUi)
  }
  return app
}

/** Say at start who may call: with no keys, anything on this machine, and nothing else. */
export function announceAccess(logger: FastifyBaseLogger, config: { auth: AuthConfig; server: { host: string } }, url: string): void {
  if (config.auth.keys.length === 0) {
    logger.warn({ url }, `no API keys configured: every route is open, so the collector listens on loopback only (${config.server.host}); add auth.keys to serve other hosts`)
  } else {
    logger.info({ keys: config.auth.keys.map((k) => ({ name: k.name, scopes: k.scopes })) }, `API keys required: ${config.auth.keys.length} configured`)
  }
}
