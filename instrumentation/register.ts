/**
 * `node --import actline/instrumentation/register app.js`: starts the
 * OpenTelemetry Node SDK with auto-instrumentation for http, pg and fastify
 * and the ActivitySpanProcessor, before the app's first module loads.
 * Configured by the environment (instrumentation/README.md lists it):
 * ACTLINE_ENDPOINT, ACTLINE_API_KEY, OTEL_SERVICE_NAME, OTEL_SDK_DISABLED,
 * OTEL_RESOURCE_ATTRIBUTES and the rest of the SDK's own variables.
 *
 * It only ships activities. An app that also exports its traces builds its
 * own NodeSDK and adds `new ActivitySpanProcessor()` to its spanProcessors.
 */
import { register } from 'node:module'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'
import { ActivitySpanProcessor } from './activity-span-processor.ts'
import { dbRowHooks, dbRowOptionsFromEnv } from './pg-row-hooks.ts'
import { TransactionTaggingInstrumentation } from './transaction-tagging.ts'

// ESM apps load pg and fastify through the ES module loader, which
// require-time patching never sees: the import-in-the-middle hook does.
if (process.env['ACTLINE_ESM_HOOK'] !== 'false') register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)

// NodeSDK starts OTLP metric and log exporters to localhost:4318 unless told
// otherwise, and waits on them at exit: this hook ships activities only.
// Setting either variable yourself still turns them on.
process.env['OTEL_METRICS_EXPORTER'] ??= 'none'
process.env['OTEL_LOGS_EXPORTER'] ??= 'none'

const sdk = new NodeSDK({
  instrumentations: [
    new HttpInstrumentation(),
    // Each write's span names the rows it wrote (entity_id and values, redacted here): pg-row-hooks.ts.
    new PgInstrumentation({ ...dbRowHooks(dbRowOptionsFromEnv()) }),
    new FastifyOtelInstrumentation({ registerOnInitialization: true }),
    // After the pg instrumentation: its own patching would undo an earlier one.
    ...(process.env['ACTLINE_TAG_TRANSACTIONS'] === 'true' ? [new TransactionTaggingInstrumentation()] : []),
  ],
  // No client given: it follows the logging API's, so an app that calls
  // configureActivityLogging() later moves spans and calls together.
  spanProcessors: [new ActivitySpanProcessor()],
})
sdk.start()

// Timers are unref'd so the SDK never keeps an app alive; what is still
// queued when the app runs out of work is sent before it exits.
process.once('beforeExit', () => void sdk.shutdown())
