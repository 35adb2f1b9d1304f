/**
 * The exporter registry: the one list of exporter types (the Collector's
 * `components.go`). The config, the pipeline wiring, `actline api` and the
 * dead-letter tools loop over it; nothing else names an exporter. Adding
 * one is a folder and a line here (docs/architecture.md, "How to add an
 * exporter").
 */
import { clickhouse } from './clickhouse/index.ts'
import { file } from './file/index.ts'
import { postgres } from './postgres/index.ts'

export const EXPORTERS = { clickhouse, postgres, file } as const

export type ExporterTypes = typeof EXPORTERS

/** `actline audit`: the postgres exporter's own tools for the audit trail's hash chain, for the command line. */
export { auditCommand } from './postgres/audit/cli.ts'
