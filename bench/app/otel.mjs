// bench:app's "the app already traces" variants: the OpenTelemetry Node SDK
// with the http, pg and Fastify instrumentations and a batch OTLP exporter
// (to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, a sink the bench runs), as a
// team tracing its service has it; VARIANT=otel-asp adds actline's
// ActivitySpanProcessor and the pg row hooks.
import { register } from 'node:module'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { ActivitySpanProcessor, dbRowHooks } from '@actline/instrumentation'

register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)
process.env.OTEL_METRICS_EXPORTER ??= 'none'
process.env.OTEL_LOGS_EXPORTER ??= 'none'
// otel-asp-only: the register hook as it was before issue 27, the SDK with the processor and no trace exporter.
const exporting = process.env.VARIANT !== 'otel-asp-only'
const activities = process.env.VARIANT !== 'otel'

new NodeSDK({
  instrumentations: [
    new HttpInstrumentation(),
    new PgInstrumentation(activities ? { ...dbRowHooks() } : {}),
    new FastifyOtelInstrumentation({ registerOnInitialization: true }),
  ],
  spanProcessors: [...(exporting ? [new BatchSpanProcessor(new OTLPTraceExporter())] : []), ...(activities ? [new ActivitySpanProcessor()] : [])],
}).start()
