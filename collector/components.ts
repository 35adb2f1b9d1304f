/**
 * The exporters a config turns on, from the registry, each with the rule
 * that routes activities to it: made here for the collector, `actline api`
 * and the dead-letter tools alike. The one place a registry line meets the
 * config.
 */
import type { Activity } from '../schemas/activity.ts'
import type { Exporter, ExporterType, Logger } from '../schemas/component.ts'
import { EXPORTERS } from '../exporters/index.ts'
import { capturedTables } from './receivers/index.ts'
import { auditPredicate } from './pipeline/audit-route.ts'
import { batchConfig, type BatchProcessorConfig } from './pipeline/batch-processor.ts'
import type { Config } from './config.ts'

export interface EnabledExporter {
  name: string
  exporter: Exporter
  /** Which activities go to it; all when absent. */
  accepts?: (a: Activity) => boolean
  /** Runs in this process (no server): one process may open it at a time. */
  embedded: boolean
  /** Its batch: the defaults, then `pipeline.batch`, then `pipeline.batch.exporters.<name>`. */
  batch: BatchProcessorConfig
}

export function enabledExporters(config: Config, logger: Logger): EnabledExporter[] {
  const audit = auditPredicate(config.pipeline.audit_route, capturedTables(config.receivers))
  const { exporters: perExporter, ...everyExporter } = config.pipeline.batch
  return Object.entries(EXPORTERS).flatMap(([name, t]) => {
    const type = t as unknown as ExporterType<{ enabled: boolean }>
    const section = config.exporters[name as keyof Config['exporters']]
    if (!section.enabled) return []
    const batch = batchConfig(everyExporter, perExporter[name as keyof typeof perExporter])
    return [{ name, exporter: type.create(section, logger), embedded: type.embedded(section), batch, ...(type.route(section) === 'audit' && { accepts: audit }) }]
  })
}
