/**
 * Filters to SQL, for ClickHouse (`{name:Type}` binds) and PostgreSQL (`$n`).
 * Values are always bound, never spliced into the text.
 */
import { DIMENSION_COLUMN, ROW_COLUMN, type Filters } from './query-params.ts'

interface Dialect {
  in(column: string, values: readonly string[]): string
  eq(column: string, value: string): string
  /** `column >= from AND column < to` on the dialect's time column. */
  range(from: number | undefined, to: number | undefined): string[]
  contains(columns: readonly string[], text: string): string
}

function conditions(filters: Filters, d: Dialect): string[] {
  const out = d.range(filters.from, filters.to)
  for (const [key, column] of Object.entries(DIMENSION_COLUMN)) {
    const values = filters[key as keyof typeof DIMENSION_COLUMN]
    if (values) out.push(d.in(column, values))
  }
  for (const [key, column] of Object.entries(ROW_COLUMN)) {
    const value = filters[key as keyof typeof ROW_COLUMN]
    if (value !== undefined) out.push(d.eq(column, value))
  }
  if (filters.q !== undefined) out.push(d.contains(['action', 'details'], filters.q))
  return out
}

export interface BoundSql {
  where: string
  params: Record<string, unknown>
}

/**
 * ClickHouse conditions on the raw table (`timeColumn` timestamp) or a rollup
 * (bucket). Times bind as epoch milliseconds, so no timezone is ever parsed.
 */
export function clickhouseWhere(filters: Filters, timeColumn = 'timestamp'): BoundSql {
  const params: Record<string, unknown> = {}
  const bind = (value: unknown, type: string) => {
    const name = `p${Object.keys(params).length}`
    params[name] = value
    return `{${name}:${type}}`
  }
  const where = conditions(filters, {
    in: (column, values) => `${column} IN ${bind(values, 'Array(String)')}`,
    eq: (column, value) => `${column} = ${bind(value, 'String')}`,
    range: (from, to) => [
      ...(from === undefined ? [] : [`${timeColumn} >= fromUnixTimestamp64Milli(${bind(from, 'Int64')}, 'UTC')`]),
      ...(to === undefined ? [] : [`${timeColumn} < fromUnixTimestamp64Milli(${bind(to, 'Int64')}, 'UTC')`]),
    ],
    contains: (columns, text) => {
      const p = bind(text, 'String')
      return `(${columns.map((c) => `positionCaseInsensitiveUTF8(${c}, ${p}) > 0`).join(' OR ')})`
    },
  })
  return { where: where.length ? where.join(' AND ') : '1', params }
}

/** PostgreSQL conditions on audit_log; `params` continue from `first`. */
export function postgresWhere(filters: Filters, params: unknown[] = []): { where: string; params: unknown[] } {
  const bind = (value: unknown) => `$${params.push(value)}`
  const where = conditions(filters, {
    in: (column, values) => `${column} = ANY(${bind(values)}::text[])`,
    eq: (column, value) => `${column} = ${bind(value)}`,
    range: (from, to) => [
      ...(from === undefined ? [] : [`occurred_at >= ${bind(new Date(from))}`]),
      ...(to === undefined ? [] : [`occurred_at < ${bind(new Date(to))}`]),
    ],
    contains: (columns, text) => {
      const p = bind(text.toLowerCase())
      return `(${columns.map((c) => `strpos(lower(${c}::text), ${p}) > 0`).join(' OR ')})`
    },
  })
  return { where: where.length ? where.join(' AND ') : 'true', params }
}
