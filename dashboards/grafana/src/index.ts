/** Every dashboard, by the file name it is written to in dashboards/grafana/. */
import type { Dashboard } from '@grafana/schema'
import activityOverview from './activity-overview.ts'
import auditTrail from './audit-trail.ts'
import collectorHealth from './collector-health.ts'
import trends from './trends.ts'

export const DASHBOARDS: Record<string, Dashboard> = {
  'activity-overview.json': activityOverview,
  'trends.json': trends,
  'collector-health.json': collectorHealth,
  'audit-trail.json': auditTrail,
}
