/**
 * GET /metrics: the collector's own counters in Prometheus text format, so
 * an SRE can see intake, queue depth and what each store acknowledged.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { FastifyPluginAsync } from 'fastify'
import '../../api/auth.ts'
import type { ReceiverStats } from '../receivers/stats.ts'
import type { BatchProcessor } from '../pipeline/batch-processor.ts'
import type { StoreStatus } from './health.ts'
import type { MemoryLimiter } from '../pipeline/memory-limiter.ts'
import type { WriteAheadLog } from '../wal/write-ahead-log.ts'
import type { Histogram } from '../../lib/histogram.ts'
import type { RequestMetrics } from './request-metrics.ts'

/**
 * A label value in the text format: backslash, double quote and line feed
 * escaped. Most values are ours, but a chain's is a tenant id a client sent.
 */
function labelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`)) : v
}

export interface SelfTelemetryOptions {
  receiver: Readonly<ReceiverStats>
  wal: Pick<WriteAheadLog, 'retainedBytes' | 'health'>
  stores: readonly StoreStatus[]
  memory: Pick<MemoryLimiter, 'state'>
  requests: RequestMetrics
  /** The chain heads of the last periodic anchor (collector/audit/anchor-service.ts). */
  auditHeads?: () => readonly { chain: string; seq: bigint }[]
}

/** When the process started, for process_start_time_seconds. */
const STARTED_S = (Date.now() - performance.now()) / 1000

export const selfTelemetry: FastifyPluginAsync<SelfTelemetryOptions> = async (app, { receiver, stores, wal, memory, requests, auditHeads }) => {
  const queues = new Map(stores.flatMap((s) => (s.queue ? [[s.exporter.name, s.queue] as const] : [])))
  // Every request waits behind whatever holds the event loop: its delay is
  // the floor of ingest latency.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  app.addHook('onClose', async () => loopDelay.disable())

  app.get('/metrics', async (_request, reply) => {
    const lines: string[] = []
    const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: [Record<string, string>, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
      for (const [labels, value] of samples) {
        const l = Object.entries(labels).map(([k, v]) => `${k}="${labelValue(v)}"`).join(',')
        lines.push(`${name}${l ? `{${l}}` : ''} ${value}`)
      }
    }
    const histogram = (name: string, help: string, series: [Record<string, string>, Histogram][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`)
      for (const [labels, h] of series) {
        const l = Object.entries(labels).map(([k, v]) => `${k}="${labelValue(v)}",`).join('')
        const counts = h.cumulative()
        h.bounds.forEach((bound, i) => lines.push(`${name}_bucket{${l}le="${bound}"} ${counts[i]}`))
        lines.push(`${name}_bucket{${l}le="+Inf"} ${h.count}`)
        const plain = l.slice(0, -1)
        lines.push(`${name}_sum${plain ? `{${plain}}` : ''} ${Number(h.sum.toFixed(6))}`, `${name}_count${plain ? `{${plain}}` : ''} ${h.count}`)
      }
    }
    const each = <T>(f: (q: BatchProcessor) => T) => [...queues].map(([exporter, q]) => [{ exporter }, f(q)] as [Record<string, string>, T])

    metric('actline_receiver_activities_total', 'counter', 'Activities received, by outcome.', [
      [{ outcome: 'accepted' }, receiver.accepted],
      [{ outcome: 'rejected' }, receiver.rejected],
    ])
    metric('actline_receiver_refused_requests_total', 'counter', 'Requests refused before reading (429, or 503 on OTLP): write-ahead log full or memory limit.', [[{}, receiver.refusedRequests]])
    metric('actline_receiver_duplicates_total', 'counter', 'Accepted activities not written again: their id was accepted moments before (a retry).', [[{}, receiver.duplicates]])
    metric('actline_otlp_spans_total', 'counter', 'Spans received on /v1/traces, by what became of them.', [
      [{ outcome: 'mapped' }, receiver.spans.mapped],
      [{ outcome: 'unmapped' }, receiver.spans.unmapped],
      [{ outcome: 'invalid' }, receiver.spans.invalid],
    ])
    if (receiver.cdc) {
      const c = receiver.cdc.state()
      const slot = { slot: receiver.cdc.slot }
      metric('actline_cdc_connected', 'gauge', 'Whether the replication stream is open (1) or being re-opened (0).', [[slot, c.connected ? 1 : 0]])
      metric('actline_cdc_transactions_total', 'counter', 'Committed transactions captured and durable in the write-ahead log.', [[slot, c.transactions]])
      metric('actline_cdc_changes_total', 'counter', 'Row changes captured and durable in the write-ahead log, by outcome: whole, or without values over what a store holds.', [
        [{ ...slot, outcome: 'stored' }, c.changes - c.values_dropped],
        [{ ...slot, outcome: 'values_dropped' }, c.values_dropped],
      ])
      metric('actline_cdc_blocked', 'gauge', 'Whether the stream waits at a change it cannot store (1): retried, never skipped; /readyz says why.', [[slot, c.blocked ? 1 : 0]])
      metric('actline_cdc_context_ignored_total', 'counter', 'Context messages ignored: malformed, hostile, or claiming to be the session_context trigger without its token.', [[slot, c.context_ignored]])
      // WAL the server keeps for the slot: it grows without bound while nothing consumes it.
      if (c.lag_bytes !== null) metric('actline_cdc_slot_lag_bytes', 'gauge', "WAL the server retains for the slot: its current position minus the slot's confirmed one.", [[slot, c.lag_bytes]])
    }
    metric('actline_exporter_queue_activities', 'gauge', 'Activities in the write-ahead log this exporter has not passed yet.', each((q) => q.pending))
    metric('actline_wal_retained_bytes', 'gauge', 'Write-ahead log bytes some exporter still needs.', [[{}, wal.retainedBytes()]])
    metric('actline_exporter_activities_total', 'counter', 'Activities per exporter, by outcome.', [...queues].flatMap(([exporter, q]) => [
      [{ exporter, outcome: 'exported' }, q.stats.exported],
      [{ exporter, outcome: 'dead_lettered' }, q.stats.rejected],
    ] as [Record<string, string>, number][]))
    metric('actline_exporter_export_calls_total', 'counter', 'Export calls (batches) per exporter.', each((q) => q.stats.exports))
    metric('actline_exporter_retries_total', 'counter', 'Failed export attempts that were retried, per exporter.', each((q) => q.health.retries))
    metric('actline_exporter_failing', 'gauge', '1 while an exporter\'s current batch keeps failing (retrying), else 0.', each((q) => (q.health.failingSince === undefined ? 0 : 1)))
    metric('actline_exporter_up', 'gauge', '1 once the exporter\'s store is connected and migrated, 0 while its start is retried.', stores.map((s) => [{ exporter: s.exporter.name }, s.starting() === undefined ? 1 : 0]))
    const heads = auditHeads?.() ?? []
    if (heads.length > 0) metric('actline_audit_chain_head_sequence', 'gauge', "Each audit chain's head sequence number at the last anchor (audit.anchor_interval).", heads.map((h) => [{ chain: h.chain }, Number(h.seq)]))
    const walHealth = wal.health()
    metric('actline_wal_write_failing', 'gauge', '1 while the last write-ahead log append failed (a full disk, an I/O error), else 0.', [[{}, walHealth.writeFailure ? 1 : 0]])
    metric('actline_wal_records_total', 'counter', 'Records appended to the write-ahead log (one per accepted request or captured transaction).', [[{}, walHealth.records]])
    metric('actline_wal_syncs_total', 'counter', 'fdatasync calls made for appends (wal.durability fsync): appends that arrive while one runs share the next.', [[{}, walHealth.syncs]])
    metric('actline_wal_corrupt_records_total', 'counter', 'Log records skipped because they failed their checksum or structure (kept in dead-letter/wal.ndjson).', [[{}, walHealth.corruptRecords]])
    const auth = app.authStats
    metric('actline_auth_failures_total', 'counter', 'Requests with a missing or unknown API key (401).', [[{}, auth.failures]])
    metric('actline_auth_blocked_total', 'counter', 'Requests refused (429) because their address failed authentication too often.', [[{}, auth.blocked]])
    const limiter = memory.state()
    metric('actline_memory_limiter_refusing', 'gauge', '1 while ingest is refused for memory, else 0.', [[{}, limiter.refusing ? 1 : 0]])
    metric('actline_memory_limiter_soft_limit_bytes', 'gauge', 'Resident memory at which refusing starts now (raised while idle memory stays high).', [[{}, limiter.soft_limit]])
    metric('actline_memory_limiter_rebases_total', 'counter', 'Times the limiter found the process idle over its limit and admitted again.', [[{}, limiter.rebases]])
    metric('actline_exporter_export_seconds_total', 'counter', 'Time spent in export calls per exporter.', each((q) => Number(q.stats.export_seconds.toFixed(6))))
    metric('actline_event_loop_delay_seconds', 'gauge', 'Event loop delay since the last scrape.', [
      [{ quantile: '0.5' }, loopDelay.percentile(50) / 1e9],
      [{ quantile: '0.99' }, loopDelay.percentile(99) / 1e9],
      [{ quantile: '1' }, loopDelay.max / 1e9],
    ])
    loopDelay.reset()
    histogram('actline_exporter_export_duration_seconds', 'Export calls per exporter by duration, retries included.', each((q) => q.stats.export_duration))
    histogram('actline_http_request_duration_seconds', 'Requests by route pattern, method and status class, by duration.', [...requests.values()].map((r) => [r.labels, r.histogram]))
    // The process metrics under prom-client's names, which Node.js dashboards expect.
    const cpu = process.cpuUsage()
    metric('process_cpu_seconds_total', 'counter', 'User and system CPU time of the process (every thread), seconds.', [[{}, (cpu.user + cpu.system) / 1e6]])
    metric('process_start_time_seconds', 'gauge', 'When the process started, seconds since the Unix epoch.', [[{}, Number(STARTED_S.toFixed(3))]])
    const mem = process.memoryUsage()
    metric('process_resident_memory_bytes', 'gauge', 'Resident set size: the process, the embedded engines included.', [[{}, mem.rss]])
    metric('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap in use (main thread).', [[{}, mem.heapUsed]])
    metric('nodejs_heap_size_total_bytes', 'gauge', 'V8 heap committed (main thread): in use, plus what V8 keeps for the next allocations.', [[{}, mem.heapTotal]])
    metric('nodejs_external_memory_bytes', 'gauge', 'Memory outside the V8 heap held by JavaScript objects (buffers).', [[{}, mem.external]])
    return reply.type('text/plain; version=0.0.4').send(lines.join('\n') + '\n')
  })
}
