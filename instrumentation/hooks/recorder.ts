/**
 * Where the register hook's requests and writes become activities: a span
 * record, the same neutral shape the OpenTelemetry paths convert spans into,
 * mapped by schemas/span-activity.ts and queued on the activity client. One
 * mapping, so an activity is the same whichever path saw it.
 */
import type { DbRows, SpanAttributeValue, SpanRecord } from '../../schemas/span-activity.ts'
import { spanToActivities } from '../../schemas/span-activity.ts'
import type { ActivityClient } from '../activity-client.ts'
import type { RowReader } from '../pg-row-hooks.ts'

export interface Recorder {
  readonly resource: Readonly<Record<string, SpanAttributeValue>>
  rows: RowReader['rows']
  record(span: SpanRecord, rows?: DbRows): void
  /** A bug here costs an activity, never the app's request: told once, as a warning. */
  failed(error: unknown): void
  readonly stats: { activities: number; failures: number }
}

export function recorder(client: () => ActivityClient, reader: RowReader, service: () => string): Recorder {
  const stats = { activities: 0, failures: 0 }
  let warned = false
  let resource = { 'service.name': service() }
  return {
    // configureActivityLogging({ service }) may name the service after the hook starts.
    get resource() {
      const name = service()
      if (resource['service.name'] !== name) resource = { 'service.name': name }
      return resource
    },
    rows: reader.rows,
    stats,
    record(span, rows) {
      const c = client()
      for (const activity of spanToActivities(span, rows)) {
        stats.activities++
        c.log(activity)
      }
    },
    failed(error) {
      stats.failures++
      if (warned) return
      warned = true
      process.emitWarning(`actline: could not record an activity: ${(error as Error)?.message ?? String(error)}`, 'ActlineActivityClient')
    },
  }
}
