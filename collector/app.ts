/**
 * Builds the Fastify app from the pipeline's parts. It never listens:
 * collector.ts does, so tests can inject requests without a socket.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Ingest } from '../schemas/component.ts'
import { activityReceiver, type ActivityReceiverConfig, type ReceiverStats } from './activity-receiver.ts'
import type { BatchProcessor } from './batch-processor.ts'
import { installErrorHandler } from './errors.ts'
import { otlpReceiver, type OtlpReceiverConfig } from './otlp-receiver.ts'
import { health, type StoreStatus } from './health.ts'
import type { MemoryLimiter } from './memory-limiter.ts'
import { selfTelemetry } from './self-telemetry.ts'
import type { WriteAheadLog } from './write-ahead-log.ts'
import { auth, type AuthConfig } from '../api/auth.ts'
import { API_PREFIX, queryApi, type QueryApiOptions } from '../api/query-api.ts'

export interface AppOptions {
  logger: FastifyBaseLogger
  receivers: { activity: ActivityReceiverConfig; otlp: OtlpReceiverConfig }
  timeouts: ServerTimeouts
  ingest: Ingest
  stores: readonly StoreStatus[]
  queues: ReadonlyMap<string, BatchProcessor>
  wal: Pick<WriteAheadLog, 'retainedBytes' | 'health'>
  memory: Pick<MemoryLimiter, 'state'>
  receiverStats: ReceiverStats
  isAccepting(): boolean
  auth: AuthConfig
  /** The query API, when served by this process. */
  api?: QueryApiOptions
}

/**
 * The server every actline process runs (the collector, `actline api`): its
 * logging and closing policy, the one error handler, and API keys.
 */
export interface ServerTimeouts {
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
  await app.register(health, { stores: options.stores, ingest: options.ingest, isAccepting: options.isAccepting })
  await app.register(selfTelemetry, { receiver: options.receiverStats, stores: options.stores, wal: options.wal, memory: options.memory })
  await app.register(activityReceiver, { config: options.receivers.activity, ingest: options.ingest, stats: options.receiverStats })
  if (options.receivers.otlp.enabled) {
    await app.register(otlpReceiver, { config: options.receivers.otlp, ingest: options.ingest, stats: options.receiverStats })
  }
  if (options.api) await app.register(queryApi, { ...options.api, prefix: API_PREFIX })
  return app
}
