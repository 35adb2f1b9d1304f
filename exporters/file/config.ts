/** `exporters.file`: docs/configuration.md documents each key. */
import { z } from 'zod'

export const FileExporterConfig = z
  .object({
    /** @default false */
    enabled: z.boolean().default(false),
    /** Where the files go. @default '<data_dir>/file-export' */
    directory: z.string().min(1).optional(),
    /** A file is closed and a new one opened once it holds this many bytes (compressed, with gzip). @default 104857600 (100 MiB) */
    rotate_bytes: z.number().int().min(1024).default(100 * 1024 * 1024),
    /** ...or once it has been open this long, whichever comes first. @default 3600000 (1 hour) */
    rotate_interval_ms: z.number().int().min(1000).default(3_600_000),
    /** Write `.ndjson.gz` files (one gzip member per batch) instead of `.ndjson`. @default false */
    gzip: z.boolean().default(false),
    /** Which activities it takes: `all`, or `audit` (those `pipeline.audit_route` sends to the audit trail). @default 'all' */
    route: z.enum(['all', 'audit']).default('all'),
  })
  .strict()

export type FileExporterConfig = z.output<typeof FileExporterConfig>
