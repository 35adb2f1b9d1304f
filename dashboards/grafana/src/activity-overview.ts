/** Activity overview: what happened over the range, from the hour rollup (never the raw table, but for its recent failures). */
import { FieldColorModeId } from '@grafana/schema'
import { bucketRange, clickhouse, dashboard, databaseVariable, datasourceVariable, FILTER_VARIABLES, percentChange, storeFilters, storeVariable, type PanelSpec } from './model.ts'

const HOUR = '${database}.activities_by_hour'
const filters = storeFilters()

/**
 * One stat and its change against the previous range, which is as long and
 * ends where this one's first bucket starts (the same periods as
 * /api/v1/trends' previous_period).
 */
function stat(title: string, description: string, current: string, previous: string, unit: string): PanelSpec {
  return {
    title,
    description,
    type: 'stat',
    w: 6,
    h: 4,
    unit,
    targets: [
      clickhouse(
        `
WITH toStartOfHour($__fromTime()) AS range_start, range_start - ($__toTime() - range_start) AS previous_start
SELECT
  ${current} AS value,
  ${percentChange('value', previous)} AS change
FROM ${HOUR}
WHERE bucket >= toStartOfHour(previous_start) AND bucket <= $__toTime()
  AND ${filters}`,
        'table',
      ),
    ],
    options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'none', textMode: 'value_and_name', justifyMode: 'auto', orientation: 'horizontal' },
    fieldConfig: {
      defaults: { unit, decimals: unit === 'ms' ? 1 : 0, color: { mode: FieldColorModeId.Fixed, fixedColor: 'text' } },
      overrides: [{ matcher: { id: 'byName', options: 'change' }, properties: [{ id: 'unit', value: 'percent' }, { id: 'decimals', value: 1 }, { id: 'displayName', value: 'vs previous range' }] }],
    },
  }
}

const inRange = 'bucket >= range_start'
const before = 'bucket < range_start'

/** A series per interval; `by` adds a string column, which Grafana pivots into a series per value. */
function series(title: string, description: string, select: string, unit: string, w: number, by?: string, extra: Partial<PanelSpec> = {}): PanelSpec {
  return {
    title,
    description,
    type: 'timeseries',
    w,
    h: 8,
    unit,
    minInterval: '1h',
    maxDataPoints: 500,
    targets: [
      clickhouse(
        `
SELECT $__timeInterval(bucket) AS time, ${by ? `${by}, ` : ''}${select}
FROM ${HOUR}
WHERE ${bucketRange('Hour')}
  AND ${filters}
GROUP BY time${by ? `, ${by}` : ''}
ORDER BY time`,
        'time_series',
      ),
    ],
    ...extra,
  }
}

function breakdown(column: string, title: string): PanelSpec {
  return {
    title,
    description: `Activities by ${column} over the range; the same counts as /api/v1/breakdown?dimension=${column}.`,
    type: 'piechart',
    w: 8,
    h: 8,
    targets: [
      clickhouse(
        `
SELECT ${column}, sum(events) AS events
FROM ${HOUR}
WHERE ${bucketRange('Hour')}
  AND ${filters}
GROUP BY ${column}
ORDER BY events DESC, ${column}
LIMIT 20`,
        'table',
      ),
    ],
    options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: true }, pieType: 'donut', legend: { showLegend: true, displayMode: 'table', placement: 'right', values: ['value', 'percent'] }, displayLabels: [] },
  }
}

export default dashboard({
  uid: 'actline-activity-overview',
  title: 'actline / Activity overview',
  description: 'Volume, failures, actors and durations of the activities in the store, from its hour rollup.',
  tags: ['activities'],
  time: { from: 'now-24h', to: 'now' },
  refresh: '1m',
  variables: [datasourceVariable('clickhouse'), databaseVariable, ...FILTER_VARIABLES.map(storeVariable)],
  panels: [
    stat('Events', 'Activities in the range, and the change against the previous range of the same length.', `sumIf(events, ${inRange})`, `sumIf(events, ${before})`, 'short'),
    stat('Failures', "Activities with status 'failure'.", `sumIf(failures, ${inRange})`, `sumIf(failures, ${before})`, 'short'),
    stat('Unique actors', 'Distinct actor_id (approximate, merged across buckets).', `uniqMergeIf(actors, ${inRange})`, `uniqMergeIf(actors, ${before})`, 'short'),
    stat('p95 duration', 'The 95th percentile of duration_ms (t-digest, merged across buckets).', `quantileTDigestMergeIf(0.95)(duration, ${inRange})`, `quantileTDigestMergeIf(0.95)(duration, ${before})`, 'ms'),
    series('Volume by source', 'Activities per interval, one series per source.', 'sum(events) AS events', 'short', 16, 'source', {
      fieldConfig: { defaults: { unit: 'short', custom: { drawStyle: 'bars', stacking: { mode: 'normal', group: 'A' }, fillOpacity: 80, lineWidth: 0 } }, overrides: [] },
    }),
    series('Error rate', 'Failures over activities per interval.', 'round(100 * sum(failures) / sum(events), 2) AS "error rate"', 'percent', 8),
    series('Unique actors', 'Distinct actors per interval.', 'uniqMerge(actors) AS actors', 'short', 8),
    {
      title: 'Top actions',
      description: 'The ten busiest actions over the range with their failures; the same counts as /api/v1/breakdown?dimension=action.',
      type: 'table',
      w: 16,
      h: 8,
      targets: [
        clickhouse(
          `
SELECT action, sum(events) AS events, sum(failures) AS failures, round(100 * failures / events, 2) AS "error %", uniqMerge(actors) AS actors
FROM ${HOUR}
WHERE ${bucketRange('Hour')}
  AND ${filters}
GROUP BY action
ORDER BY events DESC, action
LIMIT 10`,
          'table',
        ),
      ],
      options: { showHeader: true, cellHeight: 'sm' },
    },
    breakdown('category', 'By category'),
    breakdown('severity', 'By severity'),
    breakdown('status', 'By status'),
    {
      title: 'Recent failures',
      description: 'The newest 100 failed activities in the range (the raw table, bounded by the range and the LIMIT).',
      type: 'table',
      w: 24,
      h: 10,
      targets: [
        clickhouse(
          `
SELECT timestamp, source, action, actor_id, entity_type, entity_id, service, tenant_id, trace_id, duration_ms
FROM \${database}.activities
WHERE $__timeFilter_ms(timestamp) AND status = 'failure'
  AND ${filters}
ORDER BY timestamp DESC
LIMIT 100`,
          'table',
        ),
      ],
      options: { showHeader: true, cellHeight: 'sm', sortBy: [{ displayName: 'timestamp', desc: true }] },
    },
  ],
})
