/**
 * The clickhouse exporter type: every activity, to ClickHouse (a server at
 * `url`, else the embedded engine under `<data_dir>/clickhouse`). It is the
 * store the query API reads.
 */
import { join, resolve } from 'node:path'
import { defineExporter } from '../../schemas/component.ts'
import { ClickHouseExporterConfig } from './config.ts'
import { createClickHouseExporter } from './exporter.ts'

export const clickhouse = defineExporter({
  type: 'clickhouse',
  config: ClickHouseExporterConfig,
  env: {
    ACTLINE_CLICKHOUSE_URL: { key: 'url', type: 'string' },
    ACTLINE_CLICKHOUSE_USERNAME: { key: 'username', type: 'string' },
    ACTLINE_CLICKHOUSE_PASSWORD: { key: 'password', type: 'string' },
  },
  resolve: (c, dataDir) => ({ ...c, path: resolve(c.path ?? join(dataDir, 'clickhouse')) }),
  route: () => 'all',
  embedded: (c) => !c.url,
  create: createClickHouseExporter,
})
