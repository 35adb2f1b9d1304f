/**
 * The component model, after the OpenTelemetry Collector's: every receiver,
 * processor and exporter has one lifecycle, and exporters report outcomes
 * instead of throwing, so retry and queueing can wrap them from outside.
 */
import type { Activity } from './activity.ts'

export interface Component {
  /** Open connections, apply migrations. Rejects when the component cannot work. */
  start(): Promise<void>
  /** Idempotent, safe before start; drains what it holds, then releases resources. */
  shutdown(): Promise<void>
}

export type ExportResult =
  | { status: 'success' }
  | { status: 'retryable'; error: Error; retryAfterMs?: number }
  | { status: 'permanent'; error: Error }

export interface Exporter extends Component {
  /** Name used in logs, metrics and config (`clickhouse`, `postgres`). */
  readonly name: string
  /** Write one batch. Must be idempotent by activity id: a retried batch never duplicates rows. */
  export(batch: readonly Activity[]): Promise<ExportResult>
  /** Cheap reachability probe for /readyz. */
  ping(): Promise<{ ok: true } | { ok: false; error: string }>
}

/** Where a receiver hands accepted activities: the write-ahead log, behind the admission checks. */
export interface Ingest {
  /** Why nothing can be taken now (log full, memory limit), or undefined when it can. */
  refusal(): string | undefined
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
