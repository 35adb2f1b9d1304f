/** `exporters.postgres`: docs/configuration.md documents each key. */
import { z } from 'zod'

export const PostgresExporterConfig = z
  .object({
    /** @default true */
    enabled: z.boolean().default(true),
    /** postgres:// URL of a server; unset means the embedded PGlite. */
    url: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
    /** Embedded PGlite's data directory. @default '<data_dir>/postgres' */
    path: z.string().min(1).optional(),
    /**
     * Embedded PGlite's shared_buffers. Small on purpose: the audit trail is
     * append-mostly, and PostgreSQL's 128MB default would be a third of the
     * collector's memory budget. Ignored with `url`.
     * @default '32MB'
     */
    embedded_shared_buffers: z.string().regex(/^\d+(kB|MB|GB)$/, "a size such as '32MB'").default('32MB'),
    /**
     * Niceness of the embedded PGlite thread, 0-19 (Linux). Above 0 the
     * ingest thread wins when both want a core; audit rows wait in their
     * queue instead. 0 keeps normal priority. Ignored with `url`.
     * @default 10
     */
    embedded_nice: z.number().int().min(0).max(19).default(10),
    /**
     * The schema audit_log and actline's other tables live in. Every session
     * actline opens sets `search_path = pg_catalog, <schema>, pg_temp`, so a
     * name in its SQL can only mean the built-in or this schema's object,
     * whatever search_path a role or database was given (docs/audit-integrity.md).
     * @default 'public'
     */
    schema: z.string().regex(/^[a-z_][a-z0-9_$]{0,62}$/, 'a schema name of lower-case letters, digits and underscores').default('public'),
    /** Connections to a server (the embedded engine always uses one). @default 4 */
    pool_size: z.number().int().min(1).max(100).default(4),
    /** Monthly partitions created ahead of time. @default 3 */
    partitions_ahead_months: z.number().int().min(1).max(60).default(3),
    /** @default 30000 */
    statement_timeout_ms: z.number().int().positive().default(30_000),
  })
  .strict()

export type PostgresExporterConfig = z.output<typeof PostgresExporterConfig>
