/**
 * Builds the Fastify app from the pipeline's parts. It never listens:
 * collector.ts does, so tests can inject requests without a socket.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Exporter, Ingest } from '../schemas/component.ts'
import { activityReceiver, type ActivityReceiverConfig, type ReceiverStats } from './activity-receiver.ts'
import type { BatchProcessor } from './batch-processor.ts'
import { installErrorHandler } from './errors.ts'
import { otlpReceiver, type OtlpReceiverConfig } from './otlp-receiver.ts'
import { health } from './health.ts'
import { selfTelemetry } from './self-telemetry.ts'
import type { WriteAheadLog } from './write-ahead-log.ts'

export interface AppOptions {
  logger: FastifyBaseLogger
  receivers: { activity: ActivityReceiverConfig; otlp: OtlpReceiverConfig }
  ingest: Ingest
  exporters: readonly Exporter[]
  queues: ReadonlyMap<string, BatchProcessor>
  wal: Pick<WriteAheadLog, 'retainedBytes'>
  receiverStats: ReceiverStats
  isAccepting(): boolean
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger,
    // Per-request lines at 50k events/s would drown the log; errors are
    // still logged by the error handler with the request id.
    logController: new LogController({ disableRequestLogging: true }),
    // The receiver sets its own, larger limit on its routes.
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  })
  installErrorHandler(app)
  await app.register(health, { exporters: options.exporters, isAccepting: options.isAccepting })
  await app.register(selfTelemetry, { receiver: options.receiverStats, queues: options.queues, wal: options.wal })
  await app.register(activityReceiver, { config: options.receivers.activity, ingest: options.ingest, stats: options.receiverStats })
  if (options.receivers.otlp.enabled) {
    await app.register(otlpReceiver, { config: options.receivers.otlp, ingest: options.ingest, stats: options.receiverStats })
  }
  return app
}
