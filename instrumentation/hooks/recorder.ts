/**
 * Where the register hook's requests and writes become activities: a span
 * record, the same neutral shape the OpenTelemetry paths convert spans into,
 * mapped by schemas/span-activity.ts and queued on the activity client. One
 * mapping, so an activity is the same whichever path saw it.
 */
import type { DbRows, SpanAttributeValue, SpanRecord } from '../../schemas/span-activity.ts'
import { spanToActivities } from '../../schemas/span-activity.ts'
import { uuidv7 } from '../../schemas/uuidv7.ts'
import type { ActivityClient } from '../activity-client.ts'
import type { RowReader } from '../pg-row-hooks.ts'

export interface Recorder {
  readonly resource: Readonly<Record<string, SpanAttributeValue>>
  rows: RowReader['rows']
  record(span: SpanRecord, rows?: DbRows): void
  /**
   * Calls build(item) later, with others, off the request's path: building
   * activities in a batch costs a fraction of building each amid the app's
   * own work (warm caches, one pass), and the request never waits on it.
   */
  defer<T>(build: (item: T) => void, item: T): void
  /** A bug here costs an activity, never the app's request: told once, as a warning. */
  failed(error: unknown): void
  readonly stats: { activities: number; failures: number }
}

/**
 * How long a request's or write's activity waits to be built, and how many
 * wait at most. Measured with hrtime around the builds in a pg service: one
 * or two at a time (at setImmediate) ~23 us a write, ~230 at a time ~15 us
 * (the same code in a loop over one write: ~4 us). Holding them costs their
 * inputs' memory for this long.
 */
const BATCH_MS = 100
const BATCH_ITEMS = 256

export function recorder(client: () => ActivityClient, reader: RowReader, service: () => string): Recorder {
  const stats = { activities: 0, failures: 0 }
  let warned = false
  let resource = { 'service.name': service() }
  let pending: [(item: never) => void, unknown][] = []
  let timer: NodeJS.Timeout | undefined
  const producing = new WeakSet<ActivityClient>()
  const drain = () => {
    clearTimeout(timer)
    const batch = pending
    pending = []
    for (const [build, item] of batch) {
      try {
        build(item as never)
      } catch (e) {
        self.failed(e)
      }
    }
  }
  const self: Recorder = {
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
      for (const activity of spanToActivities(span, rows, uuidv7)) {
        stats.activities++
        c.log(activity)
      }
    },
    defer(build, item) {
      // The client flushes what is still here: registered before the first activity waits in the batch.
      const c = client()
      if (!producing.has(c)) {
        producing.add(c)
        c.addProducer(drain)
      }
      const n = pending.push([build as (item: never) => void, item])
      // Ref'd, and short: an app that runs out of work still gets these built (and sent at beforeExit).
      if (n === 1) timer = setTimeout(drain, BATCH_MS)
      else if (n >= BATCH_ITEMS) {
        clearTimeout(timer)
        drain()
      }
    },
    failed(error) {
      stats.failures++
      if (warned) return
      warned = true
      process.emitWarning(`actline: could not record an activity: ${(error as Error)?.message ?? String(error)}`, 'ActlineActivityClient')
    },
  }
  return self
}
