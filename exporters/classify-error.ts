/**
 * The one place that decides whether a failed export is worth retrying.
 * Retrying a permanent error blocks the stream forever; giving up on a
 * transient one loses data. When in doubt we retry: a stuck exporter is
 * visible (logs, /readyz, growing queue), a lost row is not.
 */
import type { ExportResult } from '../schemas/component.ts'

const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH',
  'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT',
])

const RETRYABLE_HTTP_STATUS = new Set([408, 429, 500, 502, 503, 504])

/**
 * ClickHouse error codes that say "the data is bad", so the same batch will
 * fail the same way forever. Everything else from the server is retried,
 * including a missing table (someone detached it for maintenance; it returns).
 */
const CLICKHOUSE_PERMANENT = new Set([
  '6', // CANNOT_PARSE_TEXT
  '26', // CANNOT_PARSE_QUOTED_STRING
  '27', // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  '38', // CANNOT_PARSE_DATE
  '41', // CANNOT_PARSE_DATETIME
  '53', // TYPE_MISMATCH
  '69', // ARGUMENT_OUT_OF_BOUND
  '70', // CANNOT_CONVERT_TYPE
  '72', // CANNOT_PARSE_NUMBER
  '117', // INCORRECT_DATA
  '130', // CANNOT_READ_ARRAY_FROM_TEXT
  '131', // TOO_LARGE_STRING_SIZE
  '441', // CANNOT_PARSE_UUID
  '676', // CANNOT_PARSE_IPV6
  '677', // CANNOT_PARSE_IPV4
])

/**
 * PostgreSQL SQLSTATE classes that are transient: connection (08), transaction
 * rollback (40), insufficient resources (53), operator intervention (57),
 * lock not available (55P03). A missing relation (42P01) is retried for the
 * same reason as in ClickHouse. Data (22) and integrity (23) errors are final.
 */
function isRetryableSqlState(code: string): boolean {
  return ['08', '40', '53', '57', '58'].includes(code.slice(0, 2)) || code === '55P03' || code === '42P01'
}

/** Classify any error thrown by a store client into an export result. */
export function classifyError(err: unknown): ExportResult {
  const error = err instanceof Error ? err : new Error(String(err))
  const e = error as Error & { code?: unknown; status?: unknown; statusCode?: unknown; retryAfterMs?: number }
  const code = typeof e.code === 'string' ? e.code : typeof e.code === 'number' ? String(e.code) : undefined
  const status = typeof e.statusCode === 'number' ? e.statusCode : typeof e.status === 'number' ? e.status : undefined

  if (code && RETRYABLE_NETWORK_CODES.has(code)) return { status: 'retryable', error }
  if (status !== undefined) {
    return RETRYABLE_HTTP_STATUS.has(status)
      ? { status: 'retryable', error, ...(e.retryAfterMs !== undefined && { retryAfterMs: e.retryAfterMs }) }
      : { status: 'permanent', error }
  }
  if (error.constructor.name === 'ClickHouseError' && code) {
    return CLICKHOUSE_PERMANENT.has(code) ? { status: 'permanent', error } : { status: 'retryable', error }
  }
  // pg's DatabaseError carries a five-character SQLSTATE.
  if (code && /^[0-9A-Z]{5}$/.test(code)) {
    return isRetryableSqlState(code) ? { status: 'retryable', error } : { status: 'permanent', error }
  }
  // Connection loss without a code (pg: "Connection terminated unexpectedly",
  // timeouts from either client), and anything unrecognised: retry.
  return { status: 'retryable', error }
}

/** Run a store write and report its outcome instead of throwing (the Exporter contract). */
export async function reportOutcome(write: () => Promise<unknown>): Promise<ExportResult> {
  try {
    await write()
    return { status: 'success' }
  } catch (err) {
    return classifyError(err)
  }
}

/** Run a cheap query as a reachability probe for /readyz. */
export async function probe(query: () => Promise<unknown>): Promise<{ ok: true } | { ok: false; error: string }> {
  try {
    await query()
    return { ok: true }
  } catch (err) {
    return { ok: false, error: (err as Error).message }
  }
}
