/**
 * The component model, after the OpenTelemetry Collector's: every receiver,
 * processor and exporter has one lifecycle, and exporters report outcomes
 * instead of throwing, so retry and queueing can wrap them from outside.
 */
import type { z } from 'zod'
import type { Activity } from './activity.ts'

export interface Component {
  /** Open connections, apply migrations. Rejects when the component cannot work. */
  start(): Promise<void>
  /** Idempotent, safe before start; drains what it holds, then releases resources. */
  shutdown(): Promise<void>
}

/**
 * What became of an export. `retryable`: the store is out (connection
 * refused, timeouts, 5xx, its "unavailable" codes): retried without bound,
 * the rows are fine. `permanent`: the store refuses these rows for good (a
 * data error): split until the refused rows stand alone, then dead-lettered.
 * `unknown`: neither is known: retried for `pipeline.retry.max_elapsed_ms`,
 * then treated as permanent, so no error nobody foresaw can stall an exporter.
 */
export type ExportResult =
  | { status: 'success' }
  | { status: 'retryable'; error: Error; retryAfterMs?: number }
  | { status: 'permanent'; error: Error }
  | { status: 'unknown'; error: Error }

/** How a batch is being sent. */
export interface ExportAttempt {
  /**
   * Set when the batch in flight at a crash is sent again, without the rows
   * stored() said the store holds: it names this sending apart from every
   * earlier one. A store that drops a repeated batch by its identity
   * (ClickHouse's insert_deduplication_token) must not drop this one, because
   * the record of an earlier attempt can outlive its rows: the engine writes
   * the record before it commits the part, and after a kill -9 between the
   * two the record stays while the part is gone.
   */
  resend?: string
}

export interface Exporter extends Component {
  /** Name used in logs, metrics and config (`clickhouse`, `postgres`). */
  readonly name: string
  /** Write one batch. Must be idempotent by activity id: a retried batch never duplicates rows. */
  export(batch: readonly Activity[], attempt?: ExportAttempt): Promise<ExportResult>
  /** Cheap reachability probe for /readyz. */
  ping(): Promise<{ ok: true } | { ok: false; error: string }>
  /** Give back memory held but not in use (an embedded engine's freed pages); called when the process is over its memory limit. Never throws. */
  reclaimMemory?(): Promise<void>
  /**
   * Which of `ids` the store already holds. For stores whose insert is not
   * atomic: ClickHouse writes the table before its materialized views, so an
   * insert a view failed has left its rows behind, and sending them again
   * in a split batch (another deduplication token) would store them twice.
   */
  stored?(ids: readonly string[]): Promise<Set<string>>
  /** The store the query API reads activities and trends from, where this exporter is it (ClickHouse SQL). Throws before start. */
  analyticsReader?(): ClickHouseReader
  /** The store the query API reads the audit trail from (PostgreSQL SQL). Throws before start. */
  auditReader?(): PostgresReader
  /**
   * A read-only SQL session on an embedded analytics store, for serving its
   * ClickHouse HTTP interface. Absent when the store is a server (which has
   * its own) or not embedded. Throws before start.
   */
  openReadOnlySql?(limits: SqlLimits): Promise<ReadOnlySql>
}

/** Bounds set on a read-only session before it is made read-only, so no query can lift them. */
export interface SqlLimits {
  max_execution_time_s: number
  max_result_rows: number
  /** Most bytes of output one result may have (the engine's limit, and a cap on what is read from it). */
  max_result_bytes: number
  max_memory_usage_bytes: number
}

/** An error the store raised, with its own code (ClickHouse's numbers). */
export interface SqlError extends Error {
  storeCode: number
}

/** One client request's session: its current database and the client's settings, already checked against the bounds. */
export interface ReadOnlyRequest {
  database: string
  settings: Readonly<Record<string, string>>
  signal?: AbortSignal
}

/** A whole result in the format asked for, as the engine's blocks gave it (not copied into one buffer). */
export interface StreamedResult {
  chunks: Buffer[]
  bytes: number
  /** Rows of the result. */
  rows: number
  elapsedSeconds: number
}

export interface StreamOptions {
  format: string
  maxBytes: number
  signal: AbortSignal
  /** Not a SELECT (SHOW, DESCRIBE, EXISTS, EXPLAIN): the engine answers it whole, it cannot stream it. */
  oneShot: boolean
}

/** What a request may do on its session; every call rejects with a SqlError. */
export interface ReadOnlySession {
  /** The engine's parse of `text`, printed back: one statement (more is a syntax error), strings and names quoted its way. */
  canonical(text: string): Promise<string>
  /** The engine's `EXPLAIN AST` of one statement: its parse tree, a node a line. */
  explain(sql: string): Promise<string>
  /** The engine's table functions, lower-cased. */
  tableFunctions(): Promise<ReadonlySet<string>>
  /** Runs the statement; past maxBytes of output or once signal fires it is cancelled in the engine. */
  stream(sql: string, options: StreamOptions): Promise<StreamedResult>
}

export interface ReadOnlySql {
  /** The store's database: where a request starts, and all of whose tables it may read. */
  readonly database: string
  /** A session of its own for one request, bounded then read-only, closed after `work`; requests run one at a time. */
  request<T>(request: ReadOnlyRequest, work: (session: ReadOnlySession) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/**
 * An exporter type, as the registry (exporters/index.ts) lists it: the
 * Collector's exporter.Factory. Everything the collector knows of a type is
 * here; nothing else names it.
 */
export interface ExporterType<Config extends { enabled: boolean } = { enabled: boolean }, Resolved extends Config = Config, E extends Exporter = Exporter> {
  /** Its name: the config section `exporters.<type>`, and the exporter's name in logs and metrics. */
  readonly type: string
  /** The section's schema, every default in it. */
  readonly config: z.ZodType<Config>
  /** Environment variables that set a key of the section (docs/configuration.md lists them). */
  readonly env?: Readonly<Record<string, { key: string; type: 'string' | 'number' }>>
  /** Paths made absolute, and defaults that depend on where the collector keeps its data. */
  resolve(config: Config, dataDir: string): Resolved
  /** Which activities it takes: every one, or those `pipeline.audit_route` selects. */
  route(config: Resolved): 'all' | 'audit'
  /** It keeps its files in this process (no server): one process may hold it at a time. */
  embedded(config: Resolved): boolean
  create(config: Resolved, logger: Logger): E
}

/** Declares a registry line, keeping its types (an identity function: the type checker does the work). */
export function defineExporter<C extends { enabled: boolean }, R extends C, E extends Exporter>(type: ExporterType<C, R, E>): ExporterType<C, R, E> {
  return type
}

/**
 * Why nothing can be taken now. `backpressure`: the pipeline is full (log
 * bytes, memory) and drains by itself: 429 (503 on OTLP). `storage`: the
 * log cannot be written (its disk is full or failing): 503.
 */
export interface Refusal {
  reason: string
  kind: 'backpressure' | 'storage'
}

/** Where a receiver hands accepted activities: the write-ahead log, behind the admission checks. */
export interface Ingest {
  /** Why nothing can be taken now, or undefined when it can. No side effects: /readyz asks too. */
  refusal(): Refusal | undefined
  /** A request passed the admission check (what the memory limiter counts as work arriving). */
  admitted?(): void
  /** Resolves once the activities are durable; rejects when they could not be stored. */
  write(activities: readonly Activity[]): Promise<void>
}

/** Minimal logger surface (pino-compatible), so components never import fastify. */
export interface Logger {
  info(obj: object | string, msg?: string): void
  warn(obj: object | string, msg?: string): void
  error(obj: object | string, msg?: string): void
  debug(obj: object | string, msg?: string): void
}

/**
 * Read access to ClickHouse for the query API. Exporters implement it over
 * the connection they already hold, so the API needs no store client of its
 * own and works the same on the embedded engine and a server.
 */
export interface ClickHouseReader {
  /** Every name in SQL is qualified with it (the embedded engine ignores a default database). */
  readonly database: string
  /**
   * Rows of a result, parsed; `{name:Type}` placeholders bind `params`. The
   * embedded engine materializes a whole result, so large reads are paged by
   * the caller (keyset), never one unbounded query.
   */
  rows<T>(sql: string, params?: Record<string, unknown>, signal?: AbortSignal): Promise<T[]>
}

/** Read access to PostgreSQL (`$1` placeholders). */
export interface PostgresReader {
  rows<T>(sql: string, params?: readonly unknown[]): Promise<T[]>
}
