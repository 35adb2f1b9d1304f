/**
 * `node --import @actline/instrumentation/register app.js`: before the app's
 * first module loads, hooks pg's query path and the http/https servers so
 * that database writes and requests become activities (hooks/index.ts).
 * No OpenTelemetry SDK is started and nothing that is not an activity costs
 * the app more than one test of a statement's first word: an app that
 * already traces adds `new ActivitySpanProcessor()` to its own SDK instead.
 * Configured by the environment (instrumentation/README.md lists it).
 */
import { getActivityClient } from './logging-api.ts'
import { hookOptionsFromEnv, installHooks } from './hooks/index.ts'

if (process.env['ACTLINE_DISABLED'] !== 'true' && process.env['OTEL_SDK_DISABLED'] !== 'true') installHooks(hookOptionsFromEnv())

// Timers are unref'd so the client never keeps an app alive; what is still
// queued when the app runs out of work is sent before it exits. 'on', not
// 'once': an app may run out of work more than once (a job, then another).
process.on('beforeExit', () => {
  const client = getActivityClient()
  if (client.stats.queued > 0) void client.forceFlush()
})
