/**
 * The stores' exporters a config asks for, each with the rule that routes
 * activities to it: created here for the collector, `actline api` and the
 * dead-letter tools alike.
 */
import type { Activity } from '../schemas/activity.ts'
import type { Exporter, Logger } from '../schemas/component.ts'
import { createClickHouseExporter } from '../exporters/clickhouse-exporter.ts'
import { createPostgresExporter } from '../exporters/postgres-exporter.ts'
import { auditPredicate } from './audit-router.ts'
import type { Config } from './config.ts'

export interface StoreExporter {
  name: string
  exporter: Exporter
  /** Which activities go to it; all when absent. */
  accepts?: (a: Activity) => boolean
  /** Runs in this process (no URL): one process may open it at a time. */
  embedded: boolean
}

export function createStoreExporters(config: Config, logger: Logger): StoreExporter[] {
  const out: StoreExporter[] = []
  const { clickhouse, postgres } = config.exporters
  if (clickhouse.enabled) out.push({ name: 'clickhouse', exporter: createClickHouseExporter(clickhouse, logger), embedded: !clickhouse.url })
  if (postgres.enabled) {
    out.push({ name: 'postgres', exporter: createPostgresExporter(postgres, logger), accepts: auditPredicate(config.pipeline.audit_route), embedded: !postgres.url })
  }
  return out
}
