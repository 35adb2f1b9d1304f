/** Collector health: the collector's own /metrics through Prometheus. Every metric named here is in docs/metrics.md. */
import { ThresholdsMode, type VariableModel } from '@grafana/schema'
import { dashboard, datasourceVariable, ds, prometheus, type PanelSpec } from './model.ts'

const SEL = 'instance=~"$instance"'
const RATE = '$__rate_interval'

const instance: VariableModel = {
  name: 'instance',
  label: 'Instance',
  type: 'query',
  datasource: ds('prometheus'),
  query: { query: 'label_values(actline_receiver_activities_total, instance)', refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 },
  definition: 'label_values(actline_receiver_activities_total, instance)',
  refresh: 2,
  multi: true,
  includeAll: true,
  allValue: '.*',
  current: { text: ['All'], value: ['$__all'] },
  sort: 1,
  hide: 0,
} as VariableModel

function graph(title: string, description: string, unit: string, w: number, ...queries: [expr: string, legend: string][]): PanelSpec {
  return {
    title,
    description,
    type: 'timeseries',
    w,
    h: 8,
    unit,
    targets: queries.map(([expr, legend], i) => prometheus(expr, legend, String.fromCharCode(65 + i))),
    options: { legend: { showLegend: true, displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi', sort: 'desc' } },
  }
}

function stat(title: string, description: string, expr: string, unit: string, legend: string, thresholds?: { red: number }): PanelSpec {
  return {
    title,
    description,
    type: 'stat',
    w: 6,
    h: 4,
    unit,
    targets: [prometheus(expr, legend)],
    options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'background', graphMode: 'area', textMode: 'value_and_name' },
    fieldConfig: {
      defaults: {
        unit,
        thresholds: { mode: ThresholdsMode.Absolute, steps: [{ color: 'green', value: null }, ...(thresholds ? [{ color: 'red', value: thresholds.red }] : [])] },
      },
      overrides: [],
    },
  }
}

export default dashboard({
  uid: 'actline-collector-health',
  title: 'actline / Collector health',
  description: "The collector's intake, queues, exports, write-ahead log and process, from its /metrics.",
  tags: ['collector'],
  time: { from: 'now-1h', to: 'now' },
  refresh: '30s',
  variables: [datasourceVariable('prometheus'), instance],
  panels: [
    stat('Intake', 'Activities accepted per second, all receivers.', `sum(rate(actline_receiver_activities_total{${SEL},outcome="accepted"}[${RATE}]))`, 'reqps', 'accepted/s'),
    stat('Stores up', 'Exporters whose store is connected and migrated, of all exporters.', `sum(actline_exporter_up{${SEL}}) / count(actline_exporter_up{${SEL}})`, 'percentunit', 'up'),
    stat('Exporters failing', 'Exporters whose current batch keeps failing (see their logs and /readyz).', `sum(actline_exporter_failing{${SEL}})`, 'short', 'failing', { red: 1 }),
    stat('Dead-lettered (range)', 'Rows a store refused for good over the range: they are in dead-letter/, `actline dead-letter` lists them.', `sum(increase(actline_exporter_activities_total{${SEL},outcome="dead_lettered"}[$__range]))`, 'short', 'dead-lettered', { red: 1 }),
    graph(
      'Intake by outcome',
      'Activities per second by what the receivers did with them, and requests refused before their body was read (the log or memory full).',
      'short',
      12,
      [`sum by (outcome) (rate(actline_receiver_activities_total{${SEL}}[${RATE}]))`, '{{outcome}}'],
      [`sum(rate(actline_receiver_refused_requests_total{${SEL}}[${RATE}]))`, 'refused requests'],
      [`sum(rate(actline_receiver_duplicates_total{${SEL}}[${RATE}]))`, 'duplicates'],
    ),
    graph(
      'Refused and unauthorised requests',
      'Requests refused for load (429/503), for a missing or unknown key (401), and blocked after repeated failures.',
      'reqps',
      12,
      [`sum(rate(actline_receiver_refused_requests_total{${SEL}}[${RATE}]))`, 'refused (log or memory full)'],
      [`sum(rate(actline_auth_failures_total{${SEL}}[${RATE}]))`, 'auth failures'],
      [`sum(rate(actline_auth_blocked_total{${SEL}}[${RATE}]))`, 'blocked'],
    ),
    graph('Queue depth per exporter', 'Activities in the log an exporter has not passed yet: a store that falls behind shows here first.', 'short', 12, [
      `sum by (exporter) (actline_exporter_queue_activities{${SEL}})`,
      '{{exporter}}',
    ]),
    graph(
      'Export rate',
      'Rows each store acknowledged per second, and rows it refused for good.',
      'short',
      12,
      [`sum by (exporter, outcome) (rate(actline_exporter_activities_total{${SEL}}[${RATE}]))`, '{{exporter}} {{outcome}}'],
      [`sum by (exporter) (rate(actline_exporter_retries_total{${SEL}}[${RATE}]))`, '{{exporter}} retries'],
    ),
    graph(
      'Export latency',
      'Duration of export calls (retries included), p50 and p99 per exporter.',
      's',
      12,
      [`histogram_quantile(0.5, sum by (le, exporter) (rate(actline_exporter_export_duration_seconds_bucket{${SEL}}[${RATE}])))`, '{{exporter}} p50'],
      [`histogram_quantile(0.99, sum by (le, exporter) (rate(actline_exporter_export_duration_seconds_bucket{${SEL}}[${RATE}])))`, '{{exporter}} p99'],
    ),
    graph(
      'Request latency',
      'p99 of HTTP request duration per route, and the mean over all.',
      's',
      12,
      [`histogram_quantile(0.99, sum by (le, route) (rate(actline_http_request_duration_seconds_bucket{${SEL}}[${RATE}])))`, '{{route}} p99'],
      [`sum(rate(actline_http_request_duration_seconds_sum{${SEL}}[${RATE}])) / sum(rate(actline_http_request_duration_seconds_count{${SEL}}[${RATE}]))`, 'mean'],
    ),
    graph(
      'Write-ahead log',
      'Log bytes some exporter still needs (ingest is refused past wal.max_bytes), and whether appends are failing (a full disk).',
      'bytes',
      12,
      [`sum by (instance) (actline_wal_retained_bytes{${SEL}})`, 'retained {{instance}}'],
      [`max(actline_wal_write_failing{${SEL}})`, 'write failing'],
    ),
    graph('Dead-lettered rows', 'Rows refused for good per second, per exporter.', 'short', 12, [
      `sum by (exporter) (rate(actline_exporter_activities_total{${SEL},outcome="dead_lettered"}[${RATE}]))`,
      '{{exporter}}',
    ]),
    graph('Event loop delay', "The event loop's delay since the last scrape: the floor of ingest latency.", 's', 8, [`max by (quantile) (actline_event_loop_delay_seconds{${SEL}})`, 'p{{quantile}}']),
    graph(
      'Memory',
      'Resident memory (the embedded engines included, what the memory limiter watches), the limit at which it starts refusing, the V8 heap and external buffers.',
      'bytes',
      8,
      [`sum by (instance) (process_resident_memory_bytes{${SEL}})`, 'resident {{instance}}'],
      [`min(actline_memory_limiter_soft_limit_bytes{${SEL}})`, 'refuses at'],
      [`sum(nodejs_heap_size_used_bytes{${SEL}})`, 'heap'],
      [`sum(nodejs_external_memory_bytes{${SEL}})`, 'external'],
    ),
    graph('CPU', 'CPU seconds per second of every thread, the embedded engines included (2 = two cores busy).', 'short', 8, [`sum by (instance) (rate(process_cpu_seconds_total{${SEL}}[${RATE}]))`, '{{instance}}']),
  ],
})
