/** Audit trail: the PostgreSQL audit_log, who changed what; an entity links to its history. */
import type { VariableModel } from '@grafana/schema'
import { dashboard, datasourceVariable, postgres, type PanelSpec } from './model.ts'

/** Free-text filters: empty means any. Values reach SQL only through ${var:sqlstring}, quoted and escaped by Grafana. */
const TEXT_FILTERS = [
  { name: 'actor', column: 'actor_id', label: 'Actor' },
  { name: 'entity_type', column: 'entity_type', label: 'Entity type' },
  { name: 'entity_id', column: 'entity_id', label: 'Entity id' },
  { name: 'tenant', column: 'tenant_id', label: 'Tenant' },
] as const

const textbox = (v: (typeof TEXT_FILTERS)[number]): VariableModel => ({ name: v.name, label: v.label, type: 'textbox', query: '', current: { text: '', value: '' }, hide: 0 })

const where = TEXT_FILTERS.map((v) => `(\${${v.name}:sqlstring} = '' OR ${v.column} = \${${v.name}:sqlstring})`).join('\n  AND ')

const here = '/d/actline-audit-trail/actline-audit-trail?${__url_time_range}'
const links = {
  entity: `${here}&var-entity_type=\${__data.fields.entity_type}&var-entity_id=\${__data.fields.entity_id}`,
  actor: `${here}&var-actor=\${__data.fields.actor_id}`,
}

const columnLink = (column: string, title: string, url: string) => ({
  matcher: { id: 'byName', options: column },
  properties: [{ id: 'links', value: [{ title, url }] }],
})

const COLUMNS = 'occurred_at AS time, actor_id, action, entity_type, entity_id, status, severity, tenant_id, service, trace_id, details::text AS details'

const panels: PanelSpec[] = [
  {
    title: 'Changes over time',
    description: 'Audit rows per interval matching the filters.',
    type: 'timeseries',
    w: 16,
    h: 7,
    unit: 'short',
    maxDataPoints: 500,
    targets: [
      postgres(
        `
SELECT $__timeGroupAlias(occurred_at, $__interval), count(*) AS changes
FROM audit_log
WHERE $__timeFilter(occurred_at)
  AND ${where}
GROUP BY 1
ORDER BY 1`,
        'time_series',
      ),
    ],
    fieldConfig: { defaults: { unit: 'short', custom: { drawStyle: 'bars', fillOpacity: 70 } }, overrides: [] },
  },
  {
    title: 'Most active actors',
    description: 'Who changed the most over the range; a name filters the dashboard to them.',
    type: 'table',
    w: 8,
    h: 7,
    targets: [
      postgres(
        `
SELECT actor_id, count(*) AS changes, count(DISTINCT entity_type || ':' || entity_id) AS entities
FROM audit_log
WHERE $__timeFilter(occurred_at) AND actor_id IS NOT NULL
  AND ${where}
GROUP BY actor_id
ORDER BY changes DESC, actor_id
LIMIT 20`,
        'table',
      ),
    ],
    fieldConfig: { defaults: {}, overrides: [columnLink('actor_id', 'Everything this actor did', links.actor)] },
  },
  {
    title: 'Who changed what',
    description: 'The newest 500 audit rows in the range matching the filters. An entity links to its history, an actor to everything they did.',
    type: 'table',
    w: 24,
    h: 11,
    targets: [
      postgres(
        `
SELECT ${COLUMNS}
FROM audit_log
WHERE $__timeFilter(occurred_at)
  AND ${where}
ORDER BY occurred_at DESC
LIMIT 500`,
        'table',
      ),
    ],
    fieldConfig: { defaults: {}, overrides: [columnLink('entity_id', 'History of this entity', links.entity), columnLink('actor_id', 'Everything this actor did', links.actor)] },
    options: { showHeader: true, cellHeight: 'sm' },
  },
  {
    title: 'Entity history',
    description: 'Every audit row of the entity set in the filters (entity type and id), oldest first, whatever the time range: pick one in the table above.',
    type: 'table',
    w: 24,
    h: 9,
    targets: [
      postgres(
        `
SELECT ${COLUMNS}
FROM audit_log
WHERE \${entity_id:sqlstring} <> '' AND entity_id = \${entity_id:sqlstring}
  AND (\${entity_type:sqlstring} = '' OR entity_type = \${entity_type:sqlstring})
ORDER BY occurred_at, id
LIMIT 1000`,
        'table',
      ),
    ],
    fieldConfig: { defaults: {}, overrides: [columnLink('actor_id', 'Everything this actor did', links.actor)] },
    options: { showHeader: true, cellHeight: 'sm' },
  },
]

export default dashboard({
  uid: 'actline-audit-trail',
  title: 'actline / Audit trail',
  description: 'The append-only audit trail in PostgreSQL: who changed what, filtered by actor, entity and tenant.',
  tags: ['audit'],
  time: { from: 'now-7d', to: 'now' },
  variables: [datasourceVariable('postgres'), ...TEXT_FILTERS.map(textbox)],
  panels,
})
