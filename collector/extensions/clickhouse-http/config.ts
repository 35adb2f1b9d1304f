/** `server.clickhouse_http`: docs/configuration.md documents each key. */
import { z } from 'zod'

export const ClickHouseHttpConfig = z
  .object({
    /** Serve ClickHouse's HTTP interface for the embedded store (never for a server, which has its own). @default true */
    enabled: z.boolean().default(true),
    /** @default '127.0.0.1' */
    host: z.string().min(1).default('127.0.0.1'),
    /** ClickHouse's own HTTP port, so clients need only the host. @default 8123 */
    port: z.number().int().min(0).max(65535).default(8123),
    /** Longest a query may run; a client may ask for less, never more. @default 30 */
    max_execution_time_s: z.number().int().min(1).max(3600).default(30),
    /** Most rows a result may hold. @default 1000000 */
    max_result_rows: z.number().int().min(1).default(1_000_000),
    /**
     * Most bytes of output one result may have, in the format asked for: the
     * endpoint holds a result whole before it answers (so an error is a status,
     * not a cut-off body), and stops the query in the engine once past this.
     * @default 67108864 (64 MiB)
     */
    max_result_bytes: z.number().int().min(64 * 1024).max(1024 * 1024 * 1024).default(64 * 1024 * 1024),
    /** Most memory one query may use. @default 536870912 (512 MiB) */
    max_memory_usage_bytes: z.number().int().min(16 * 1024 * 1024).default(512 * 1024 * 1024),
    /** Largest query text accepted. @default 1048576 */
    max_query_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  })
  .strict()

export type ClickHouseHttpConfig = z.output<typeof ClickHouseHttpConfig>
