/**
 * The postgres exporter type: the audit-relevant activities
 * (`pipeline.audit_route`), to PostgreSQL's append-only `audit_log` (a server
 * at `url`, else the embedded PGlite under `<data_dir>/postgres`).
 */
import { join, resolve } from 'node:path'
import { defineExporter } from '../../schemas/component.ts'
import { PostgresExporterConfig } from './config.ts'
import { createPostgresExporter } from './exporter.ts'

export const postgres = defineExporter({
  type: 'postgres',
  config: PostgresExporterConfig,
  env: { ACTLINE_POSTGRES_URL: { key: 'url', type: 'string' } },
  resolve: (c, dataDir) => ({ ...c, path: resolve(c.path ?? join(dataDir, 'postgres')) }),
  route: () => 'audit',
  embedded: (c) => !c.url,
  create: createPostgresExporter,
})
