/**
 * The pieces every actline dashboard is built from, typed with Grafana's own
 * dashboard model (@grafana/schema), so a panel that Grafana would not load
 * does not compile. `npm run dashboards:build` writes the JSON Grafana reads.
 */
import type { Dashboard, DataSourceRef, Panel, VariableModel } from '@grafana/schema'

/** The plugin each datasource is, and the uid provisioning gives it (dashboards/grafana/provisioning). */
export const DATASOURCES = {
  clickhouse: { plugin: 'grafana-clickhouse-datasource', uid: 'actline-clickhouse', name: 'actline ClickHouse' },
  prometheus: { plugin: 'prometheus', uid: 'actline-prometheus', name: 'actline Prometheus' },
  postgres: { plugin: 'grafana-postgresql-datasource', uid: 'actline-postgres', name: 'actline audit trail' },
} as const
export type DatasourceKind = keyof typeof DATASOURCES

/**
 * Panels name their datasource through a dashboard variable, never a uid:
 * imported into a Grafana whose datasources have other uids, the dashboard
 * asks which one to use instead of failing every panel.
 */
export function ds(kind: DatasourceKind): DataSourceRef {
  return { type: DATASOURCES[kind].plugin, uid: `\${ds_${kind}}` }
}

export function datasourceVariable(kind: DatasourceKind): VariableModel {
  const d = DATASOURCES[kind]
  return { name: `ds_${kind}`, label: `${kind === 'postgres' ? 'PostgreSQL' : kind === 'clickhouse' ? 'ClickHouse' : 'Prometheus'}`, type: 'datasource', query: d.plugin, current: { text: d.name, value: d.uid }, hide: 0, refresh: 1, regex: '' }
}

/** The ClickHouse database actline writes to (exporters.clickhouse.database): one place to change it. */
export const databaseVariable: VariableModel = {
  name: 'database',
  type: 'constant',
  query: 'actline',
  current: { text: 'actline', value: 'actline' },
  hide: 2,
}

/** The dimensions a dashboard filters by, as the store's columns. */
export const FILTER_VARIABLES = [
  { name: 'tenant', column: 'tenant_id', label: 'Tenant' },
  { name: 'service', column: 'service', label: 'Service' },
  { name: 'source', column: 'source', label: 'Source' },
  { name: 'action', column: 'action', label: 'Action' },
] as const

/** The day rollup over the range: a variable's values come from the store, not from a list that goes stale. */
export function storeVariable(v: (typeof FILTER_VARIABLES)[number]): VariableModel {
  const sql = `SELECT DISTINCT ${v.column} FROM \${database}.activities_by_day WHERE bucket >= toStartOfDay($__fromTime()) AND bucket <= $__toTime() AND ${v.column} != '' ORDER BY ${v.column} LIMIT 1000`
  return {
    name: v.name,
    label: v.label,
    type: 'query',
    datasource: ds('clickhouse'),
    query: sql,
    definition: sql,
    refresh: 2,
    multi: true,
    includeAll: true,
    current: { text: ['All'], value: ['$__all'] },
    sort: 1,
    hide: 0,
  } as VariableModel
}

/**
 * `AND`-joined conditions for the filter variables: `$__conditionalAll`
 * drops a condition when its variable is All, so "All" reads every row,
 * the rows with no tenant included, and never lists 1,000 values in an IN.
 */
export function storeFilters(): string {
  return FILTER_VARIABLES.map((v) => `$__conditionalAll(${v.column} IN (\${${v.name}:singlequote}), $${v.name})`).join('\n  AND ')
}

/**
 * A rollup's buckets that overlap the dashboard's range: the bucket holding
 * its start counts whole, as in /api/v1/trends. Written with the macros'
 * parentheses: the plugin's parser takes everything up to the next
 * parenthesis as a bare macro's arguments (grafana-plugin-sdk-go
 * data/sqlutil/macros.go, getMacroMatches).
 */
export function bucketRange(grain: 'Hour' | 'Day'): string {
  return `bucket >= toStartOf${grain}($__fromTime()) AND bucket <= $__toTime()`
}

/**
 * Percent change the way /api/v1/trends computes it (api/trend-analysis.ts
 * percentChange: (current - previous) / previous * 100, null without a
 * base), operation for operation, so a panel and the API give the same
 * double and never round a tie differently. Display rounding is Grafana's
 * `decimals`, not SQL's round(), which is banker's for floats.
 */
export function percentChange(current: string, previous: string): string {
  return `(toFloat64(${current}) - ${previous}) / nullIf(${previous}, 0) * 100`
}

export interface Target {
  refId: string
  datasource: DataSourceRef
  [key: string]: unknown
}

/** A ClickHouse SQL query; format 0 is a time series (long rows pivoted by their string columns), 1 a table (sqlds FormatOption). */
export function clickhouse(rawSql: string, format: 'time_series' | 'table', refId = 'A'): Target {
  return { refId, datasource: ds('clickhouse'), editorType: 'sql', format: format === 'time_series' ? 0 : 1, queryType: format === 'time_series' ? 'timeseries' : 'table', rawSql: rawSql.trim(), pluginVersion: '4.0.0' }
}

export function prometheus(expr: string, legendFormat: string, refId = 'A'): Target {
  return { refId, datasource: ds('prometheus'), expr, legendFormat, range: true, editorMode: 'code' }
}

/** A PostgreSQL SQL query (the core plugin's model: rawQuery with editorMode code). */
export function postgres(rawSql: string, format: 'time_series' | 'table', refId = 'A'): Target {
  return { refId, datasource: ds('postgres'), editorMode: 'code', format, rawQuery: true, rawSql: rawSql.trim() }
}

/** The SQL or expression of a target, whatever its datasource. */
export function queryText(t: Target): string {
  return String(t.rawSql ?? t.expr ?? '')
}

export interface PanelSpec {
  title: string
  type: 'timeseries' | 'stat' | 'table' | 'piechart' | 'barchart' | 'heatmap' | 'bargauge'
  description: string
  targets: Target[]
  w: number
  h: number
  unit?: string
  /** The panel's own `interval`: the least Grafana may pick, the grain of the rollup it reads. */
  minInterval?: string
  options?: Record<string, unknown>
  fieldConfig?: Panel['fieldConfig']
  /** Grafana computes `$__interval` from the range over this many points. */
  maxDataPoints?: number
  links?: Panel['links']
}

/** Lays panels out left to right, wrapping at Grafana's 24 columns, with ids in reading order. */
export function layout(specs: readonly PanelSpec[]): Panel[] {
  let x = 0
  let y = 0
  let rowHeight = 0
  return specs.map((s, i) => {
    if (x + s.w > 24) {
      x = 0
      y += rowHeight
      rowHeight = 0
    }
    const panel: Panel = {
      id: i + 1,
      type: s.type,
      title: s.title,
      description: s.description,
      datasource: s.targets[0]!.datasource,
      gridPos: { x, y, w: s.w, h: s.h },
      targets: s.targets as Panel['targets'],
      fieldConfig: s.fieldConfig ?? { defaults: { ...(s.unit && { unit: s.unit }) }, overrides: [] },
      options: s.options ?? {},
      ...(s.minInterval && { interval: s.minInterval }),
      ...(s.maxDataPoints && { maxDataPoints: s.maxDataPoints }),
      ...(s.links && { links: s.links }),
    }
    x += s.w
    rowHeight = Math.max(rowHeight, s.h)
    return panel
  })
}

export interface DashboardSpec {
  uid: string
  title: string
  description: string
  tags: string[]
  time: { from: string; to: string }
  refresh?: string
  variables: VariableModel[]
  panels: PanelSpec[]
  links?: Dashboard['links']
}

/** Grafana's schemaVersion for the dashboard model of @grafana/schema 13. */
export const SCHEMA_VERSION = 41

export function dashboard(spec: DashboardSpec): Dashboard {
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['actline', ...spec.tags],
    editable: true,
    graphTooltip: 1,
    schemaVersion: SCHEMA_VERSION,
    version: 1,
    time: spec.time,
    timezone: 'utc',
    refresh: spec.refresh ?? '',
    fiscalYearStartMonth: 0,
    liveNow: false,
    links: spec.links ?? [{ title: 'actline', type: 'dashboards', tags: ['actline'], asDropdown: true, icon: 'external link', includeVars: false, keepTime: true, targetBlank: false, tooltip: '', url: '' }],
    annotations: { list: [] },
    templating: { list: spec.variables },
    panels: layout(spec.panels),
  }
}
