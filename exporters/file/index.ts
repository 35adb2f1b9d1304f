/**
 * The file exporter type: activities as rotated NDJSON files under
 * `directory` (default `<data_dir>/file-export`), every activity or the
 * audit route's. Off by default.
 */
import { join, resolve } from 'node:path'
import { defineExporter } from '../../schemas/component.ts'
import { FileExporterConfig } from './config.ts'
import { createFileExporter } from './exporter.ts'

export const file = defineExporter({
  type: 'file',
  config: FileExporterConfig,
  env: { ACTLINE_FILE_EXPORT_DIR: { key: 'directory', type: 'string' } },
  resolve: (c, dataDir) => ({ ...c, directory: resolve(c.directory ?? join(dataDir, 'file-export')) }),
  route: (c) => c.route,
  // Its files are this process's to write: one process at a time.
  embedded: () => true,
  create: createFileExporter,
})
