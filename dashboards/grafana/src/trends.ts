/** Trends: days, weeks and months from the day rollup; the busiest hours from the hour rollup. */
import { bucketRange, clickhouse, dashboard, databaseVariable, datasourceVariable, FILTER_VARIABLES, percentChange, storeFilters, storeVariable, type PanelSpec } from './model.ts'

const DAY = '${database}.activities_by_day'
const filters = storeFilters()

/**
 * Whole periods (weeks from Monday, months from the 1st, UTC) and each
 * one's change against the one before; the period before the range's first
 * is read too, so the first row has a change.
 */
function periodChange(title: string, period: 'toMonday' | 'toStartOfMonth', back: string, label: string): PanelSpec {
  return {
    title,
    description: `Activities per ${label}, and the change against the ${label} before. The first and last ${label} may be partial: they hold what the range holds of them.`,
    type: 'table',
    w: 12,
    h: 8,
    targets: [
      clickhouse(
        `
SELECT time, events, ${percentChange('events', 'previous')} AS change FROM (
  SELECT time, events,
    lagInFrame(events) OVER (ORDER BY time ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS previous
  FROM (
    SELECT toDateTime(${period}(bucket), 'UTC') AS time, sum(events) AS events
    FROM ${DAY}
    WHERE bucket >= toDateTime(${period}(toStartOfDay($__fromTime()) - ${back}), 'UTC') AND bucket <= $__toTime()
      AND ${filters}
    GROUP BY time
  )
)
WHERE time >= toDateTime(${period}(toStartOfDay($__fromTime())), 'UTC')
ORDER BY time DESC`,
        'table',
      ),
    ],
    fieldConfig: {
      defaults: {},
      overrides: [
        { matcher: { id: 'byName', options: 'time' }, properties: [{ id: 'displayName', value: label }, { id: 'unit', value: period === 'toMonday' ? 'time:YYYY-MM-DD' : 'time:YYYY-MM' }] },
        { matcher: { id: 'byName', options: 'change' }, properties: [{ id: 'displayName', value: `vs previous ${label}` }, { id: 'unit', value: 'percent' }, { id: 'decimals', value: 1 }, { id: 'custom.cellOptions', value: { type: 'color-text' } }] },
      ],
    },
    options: { showHeader: true, cellHeight: 'sm' },
  }
}

export default dashboard({
  uid: 'actline-trends',
  title: 'actline / Trends',
  description: 'Daily volume with moving averages, week-over-week and month-over-month change, per-action trends and the busiest hours.',
  tags: ['activities', 'trends'],
  time: { from: 'now-90d', to: 'now' },
  variables: [datasourceVariable('clickhouse'), databaseVariable, ...FILTER_VARIABLES.map(storeVariable)],
  panels: [
    {
      title: 'Daily volume',
      description:
        'Activities per day (UTC) with their trailing 7- and 30-day averages. Days with nothing count as 0; the averages read the 29 days before the range, so they start with it.',
      type: 'timeseries',
      w: 24,
      h: 9,
      unit: 'short',
      minInterval: '1d',
      targets: [
        clickhouse(
          `
SELECT time, events, ma7 AS "7-day average", ma30 AS "30-day average" FROM (
  SELECT day AS time, events,
    round(avg(events) OVER (ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW), 1) AS ma7,
    round(avg(events) OVER (ORDER BY day ROWS BETWEEN 29 PRECEDING AND CURRENT ROW), 1) AS ma30
  FROM (
    SELECT bucket AS day, sum(events) AS events
    FROM ${DAY}
    WHERE bucket >= toStartOfDay($__fromTime()) - INTERVAL 29 DAY AND bucket <= $__toTime()
      AND ${filters}
    GROUP BY day
    ORDER BY day WITH FILL FROM toDateTime(toStartOfDay($__fromTime()) - INTERVAL 29 DAY, 'UTC') TO toDateTime($__toTime(), 'UTC') + 1 STEP INTERVAL 1 DAY
  )
)
WHERE time >= toStartOfDay($__fromTime())
ORDER BY time`,
          'time_series',
        ),
      ],
      fieldConfig: {
        defaults: { unit: 'short', custom: { lineWidth: 1, fillOpacity: 0 } },
        overrides: [{ matcher: { id: 'byName', options: 'events' }, properties: [{ id: 'custom.drawStyle', value: 'bars' }, { id: 'custom.fillOpacity', value: 60 }] }],
      },
    },
    periodChange('Week over week', 'toMonday', 'INTERVAL 7 DAY', 'week'),
    periodChange('Month over month', 'toStartOfMonth', 'INTERVAL 1 MONTH', 'month'),
    {
      title: 'Per-action trends',
      description: "Activities per day of the range's ten busiest actions.",
      type: 'timeseries',
      w: 24,
      h: 9,
      unit: 'short',
      minInterval: '1d',
      targets: [
        clickhouse(
          `
SELECT bucket AS time, action, sum(events) AS events
FROM ${DAY}
WHERE ${bucketRange('Day')}
  AND ${filters}
  AND action IN (
    SELECT action FROM ${DAY}
    WHERE ${bucketRange('Day')}
      AND ${filters}
    GROUP BY action ORDER BY sum(events) DESC, action LIMIT 10)
GROUP BY time, action
ORDER BY time`,
          'time_series',
        ),
      ],
    },
    {
      title: 'Busiest hours',
      description: 'Activities per hour of the day (UTC, rows) and day (columns), from the hour rollup.',
      type: 'heatmap',
      w: 24,
      h: 9,
      minInterval: '1d',
      targets: [
        clickhouse(
          `
SELECT toStartOfDay(bucket) AS time, formatDateTime(bucket, '%H') AS hour, sum(events) AS events
FROM \${database}.activities_by_hour
WHERE ${bucketRange('Hour')}
  AND ${filters}
GROUP BY time, hour
ORDER BY time, hour`,
          'time_series',
        ),
      ],
      options: { calculate: false, yAxis: { axisPlacement: 'left', reverse: false }, rowsFrame: { layout: 'unknown' }, color: { mode: 'scheme', scheme: 'Oranges', steps: 64 }, cellGap: 1, tooltip: { mode: 'single', yHistogram: false }, legend: { show: true } },
    },
  ],
})
