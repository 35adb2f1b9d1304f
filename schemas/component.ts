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

/** Where a processor hands activities on. */
export interface Consumer {
  /** Take all or none; false when there is no room (backpressure). */
  consume(activities: readonly Activity[]): boolean
  /** Rows it can take now, so a caller can check every target before committing to any. */
  capacity(): number
}

export interface Processor extends Component, Consumer {}

export interface Receiver extends Component {}

/** Minimal logger surface (pino-compatible), so components never import fastify. */
export interface Logger {
  info(obj: object | string, msg?: string): void
  warn(obj: object | string, msg?: string): void
  error(obj: object | string, msg?: string): void
  debug(obj: object | string, msg?: string): void
}
