/**
 * What apps import: `import { logUserAction } from '@actline/instrumentation'`.
 * instrumentation/README.md shows each use.
 */
export {
  configureActivityLogging, getActivityClient, logActivity, logUserAction, logSystemEvent, logIntegrationEvent,
  withActivity, withDatabaseLogging, withApiLogging, withBatchLogging, type ActivityOptions,
} from './logging-api.ts'
export { withActivityContext, setActivityContext, currentActivityContext, type ActivityContext } from './activity-context.ts'
export { tagTransaction, transactionContext, TRANSACTION_CONTEXT_PREFIX } from './transaction-context.ts'
export {
  ActivityClient, activityClientConfig, ActivityExportError, type ActivityClientConfig, type ActivityClientOptions, type ActivityClientStats,
} from './activity-client.ts'
export { ActivitySpanProcessor, toSpanRecord, type ActivitySpanProcessorOptions } from './activity-span-processor.ts'
export { spanToActivity, spanToActivities, mayBeActivity, DB_ROWS_ATTRIBUTE, type SpanRecord } from '../schemas/span-activity.ts'
export type { ActivityInputType } from '../schemas/activity-input.ts'
export { dbRowHooks, type DbRowOptions } from './pg-row-hooks.ts'
export { installHooks, hookStats, hookOptionsFromEnv, type HookOptions, type HookStats } from './hooks/index.ts'
