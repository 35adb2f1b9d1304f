/** `exporters.clickhouse`: docs/configuration.md documents each key. */
import { z } from 'zod'

export const ClickHouseExporterConfig = z
  .object({
    /** @default true */
    enabled: z.boolean().default(true),
    /** HTTP(S) URL of a ClickHouse server; unset means the embedded engine. */
    url: z.url({ protocol: /^https?$/ }).optional(),
    /** @default 'default' */
    username: z.string().default('default'),
    /** @default '' */
    password: z.string().default(''),
    /** Created at start when missing. @default 'actline' */
    database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'database must be a plain identifier').default('actline'),
    /** Embedded engine's data directory. @default '<data_dir>/clickhouse' */
    path: z.string().min(1).optional(),
    /** Days to keep raw activities; 0 keeps them forever. @default 0 */
    ttl_days: z.number().int().min(0).max(36500).default(0),
    /**
     * Niceness (0-19) of the embedded engine's insert threads, so ingest wins
     * when both want a core. Ignored with `url`.
     * @default 10
     */
    embedded_nice: z.number().int().min(0).max(19).default(10),
    /**
     * Threads the embedded engine may use for one insert (parsing, and the
     * rollup views). One keeps its memory low and leaves a core to ingest;
     * more shortens each insert. Ignored with `url`.
     * @default 1
     */
    embedded_insert_threads: z.number().int().min(1).max(64).default(1),
    /** @default 30000 */
    request_timeout_ms: z.number().int().positive().default(30_000),
  })
  .strict()

export type ClickHouseExporterConfig = z.output<typeof ClickHouseExporterConfig>
