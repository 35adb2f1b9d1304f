/**
 * The pg instrumentation's request and response hooks that tell each write's
 * span which rows it wrote: the key (`entity_id`) and the values, redacted
 * here, in the app, before anything leaves it. They go on the span as one
 * attribute, `actline.db.rows` (JSON), which the span mapping
 * (schemas/span-activity.ts) turns into one activity per row, whichever way
 * the span travels (the ActivitySpanProcessor or OTLP).
 */
import type { Span } from '@opentelemetry/api'
import { DEFAULT_REDACT, redactRow, redactor } from '../schemas/redaction.ts'
import { boundedRow, changeDetails, entityIdOf, type RowValues } from '../schemas/row-change.ts'
import { DB_ROWS_ATTRIBUTE, mayWrite, type DbRowEntry, type DbRows } from '../schemas/span-activity.ts'
import { statementReader, type StatementRows } from './statement-rows.ts'

export type { StatementRows }

export interface DbRowOptions {
  /** Key columns by table name; a table not listed has `defaultKey`. */
  keys?: Readonly<Record<string, readonly string[]>>
  /** @default ['id'] */
  defaultKey?: readonly string[]
  /** Column names containing one of these words are sent as "[redacted]". @default password, secret, token, key, ssn, card */
  redact?: readonly string[]
  /** Rows listed per statement; the rest are counted. @default 100 */
  maxRows?: number
  /** false: keys only, no values. @default true */
  values?: boolean
}

/** DbRowOptions from the environment the register hook reads (instrumentation/README.md). */
export function dbRowOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): DbRowOptions {
  const keys: Record<string, string[]> = {}
  // ACTLINE_DB_KEYS="order_items=order_id+line_no;accounts=account_no"
  for (const entry of (env['ACTLINE_DB_KEYS'] ?? '').split(/[;,]/)) {
    const [table, columns] = entry.split('=').map((s) => s.trim())
    if (table && columns) keys[table] = columns.split('+').map((c) => c.trim()).filter(Boolean)
  }
  const redact = env['ACTLINE_REDACT']?.split(',').map((w) => w.trim()).filter(Boolean)
  const maxRows = Number(env['ACTLINE_DB_MAX_ROWS'])
  return {
    keys,
    ...(redact && { redact }),
    ...(Number.isInteger(maxRows) && maxRows >= 0 && { maxRows }),
    values: env['ACTLINE_DB_VALUES'] !== 'false',
  }
}

interface PgHookConfig {
  requestHook(span: Span, info: { query: { text: string; values?: unknown[] } }): void
  responseHook(span: Span, info: { data: { rows?: unknown[]; rowCount?: number | null } }): void
}

/** Reads a write's rows: the statement at the request, the rows it returned at the response. */
export interface RowReader {
  /** The statement's shape when it is a write read here; undefined for anything else (a read, BEGIN, a shape not followed). */
  read(text: string, values: readonly unknown[] | undefined): StatementRows | undefined
  /** Its rows: redacted, bounded, one entry per row up to maxRows. */
  rows(stmt: StatementRows, returned?: unknown[], rowCount?: number | null): DbRows
}

export function rowReader(options: DbRowOptions = {}): RowReader {
  const redacted = memo(redactor(options.redact ?? DEFAULT_REDACT))
  const maxRows = options.maxRows ?? 100
  const defaultKey = options.defaultKey ?? ['id']
  const keyOf = (table: string) => options.keys?.[table] ?? defaultKey
  const read = statementReader()
  return {
    read: (text, values) => (mayWrite(text) ? read(text, values) : undefined),
    rows(stmt, returned, rowCount) {
      // Only the rows listed are read: a RETURNING of 100,000 rows costs no more than of maxRows.
      const total = returned?.length || stmt.written.length
      const listed = { ...stmt, written: stmt.written.slice(0, maxRows) }
      const rows = rowsOf(listed, keyOf(stmt.table), redacted, options.values !== false, returned?.slice(0, maxRows), rowCount)
      const omitted = rows.length > 0 && total > maxRows ? total - maxRows : 0
      return { rows, ...(omitted > 0 && { omitted }), ...(typeof rowCount === 'number' && { row_count: rowCount }) }
    },
  }
}

/** A column's redaction, decided once per name: the names an app writes are few, and a regex per value is not. */
function memo(redacted: (column: string) => boolean): (column: string) => boolean {
  const known = new Map<string, boolean>()
  return (column) => {
    let r = known.get(column)
    if (r === undefined) {
      r = redacted(column)
      if (known.size < 10_000) known.set(column, r)
    }
    return r
  }
}

/** The rows the hooks last read for a span, for ActivitySpanProcessor in the same process: no JSON back and forth. */
export const spanRows = new WeakMap<object, DbRows>()

/**
 * requestHook and responseHook for `new PgInstrumentation({ ...dbRowHooks() })`,
 * in an app that traces with its own OpenTelemetry SDK: the rows travel on
 * the span as JSON (they may go over OTLP too).
 */
export function dbRowHooks(options: DbRowOptions = {}): PgHookConfig {
  const reader = rowReader(options)
  // The statement read at the request, for its response: the span is the one key both hooks share.
  const pending = new WeakMap<Span, StatementRows>()
  const write = (span: Span, stmt: StatementRows, returned?: unknown[], rowCount?: number | null) => {
    const rows = reader.rows(stmt, returned, rowCount)
    // In this process the processor takes the object itself; the attribute is for the span's other readers (OTLP).
    spanRows.set(span, rows)
    span.setAttribute(DB_ROWS_ATTRIBUTE, JSON.stringify(rows))
  }
  return {
    requestHook(span, { query }) {
      const stmt = reader.read(query.text, query.values)
      if (!stmt) return
      pending.set(span, stmt)
      write(span, stmt)
    },
    responseHook(span, { data }) {
      const stmt = pending.get(span)
      if (!stmt) return
      pending.delete(span)
      write(span, stmt, stmt.returning ? data.rows : undefined, data.rowCount)
    },
  }
}

/** One entry per row the statement wrote, as far as its text and what it returned tell. */
function rowsOf(
  stmt: StatementRows, key: readonly string[], redacted: (c: string) => boolean, withValues: boolean, returned: unknown[] | undefined, rowCount: number | null | undefined,
): DbRowEntry[] {
  const back = returned?.filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null).map(boundedRow)
  const written = stmt.written.map(boundedRow)
  const where = stmt.where && boundedRow(stmt.where)
  let rows: RowValues[]
  if (stmt.operation === 'insert') {
    rows = back?.length ? back.map((r, i) => ({ new: back.length === written.length ? { ...written[i], ...r } : r })) : written.map((r) => ({ new: r }))
  } else if (stmt.operation === 'update') {
    rows = back?.length ? back.map((r) => ({ new: { ...written[0], ...r } })) : [{ new: written[0] ?? {} }]
  } else {
    rows = back?.length ? back.map((r) => ({ old: r })) : [{}]
  }
  // Nothing written (WHERE matched none, ON CONFLICT DO NOTHING): no row changed, as no row trigger would have fired.
  if (rowCount === 0) return []
  // Nothing returned: the one entry stands for every row the WHERE matched, and names the row only when the WHERE pins its key.
  const statementLevel = !back?.length && stmt.operation !== 'insert'
  // Field by field, no spreads: this runs for every row an app writes.
  const out: DbRowEntry[] = []
  for (const r of rows) {
    const values = r.old ?? r.new
    const keyValues: Record<string, unknown> = {}
    for (const column of key) keyValues[column] = values?.[column] ?? where?.[column]
    const entityId = entityIdOf(key, keyValues, redacted)
    let details = withValues ? changeDetails(r, redacted) : undefined
    if (statementLevel && entityId === undefined && where && withValues) details = { ...details, where: redactRow(where, redacted) }
    const entry: DbRowEntry = {}
    if (entityId !== undefined) entry.entity_id = entityId
    if (details !== undefined) entry.details = details
    out.push(entry)
  }
  return out
}
