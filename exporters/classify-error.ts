/**
 * The one place that decides what a failed export means. Three answers
 * (schemas/component.ts): an outage (retry without bound: the rows are fine
 * and the store will be back), a data error (these rows will fail the same
 * way forever: split and dead-letter them), or unknown (retry for a bounded
 * time, then treat as data). Retrying a data error forever stalls the
 * exporter; calling an outage a data error loses rows to the dead-letter
 * file. So an error is an outage only when the code says the *store* is
 * unwell (down, overloaded, read-only, missing a table, refusing our
 * credentials), data only when the code says the *rows* are bad, and
 * anything else is unknown.
 */
import type { ExportResult } from '../schemas/component.ts'

const OUTAGE_NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR',
])

const OUTAGE_HTTP_STATUS = new Set([401, 403, 407, 408, 429, 500, 502, 503, 504])

/** ClickHouse codes that say "these rows are bad": the same rows fail the same way forever. */
const CLICKHOUSE_DATA = new Set([
  '6', // CANNOT_PARSE_TEXT
  '25', // CANNOT_PARSE_ESCAPE_SEQUENCE (a lone surrogate's \ud800)
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
  '321', // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  '407', // DECIMAL_OVERFLOW
  '441', // CANNOT_PARSE_UUID
  '469', // VIOLATED_CONSTRAINT (a CHECK constraint refused the row)
  '676', // CANNOT_PARSE_IPV6
  '677', // CANNOT_PARSE_IPV4
  '691', // UNKNOWN_ELEMENT_OF_ENUM
])

/** ClickHouse codes that say "the store is unwell": retried until it is back. */
const CLICKHOUSE_OUTAGE = new Set([
  '60', // UNKNOWN_TABLE (detached for maintenance; it returns)
  '81', // UNKNOWN_DATABASE
  '159', // TIMEOUT_EXCEEDED
  '164', // READONLY
  '202', // TOO_MANY_SIMULTANEOUS_QUERIES
  '203', // NO_FREE_CONNECTION
  '209', // SOCKET_TIMEOUT
  '210', // NETWORK_ERROR
  '236', // ABORTED
  '241', // MEMORY_LIMIT_EXCEEDED
  '242', // TABLE_IS_READ_ONLY
  '243', // NOT_ENOUGH_SPACE
  '252', // TOO_MANY_PARTS
  '285', // TOO_FEW_LIVE_REPLICAS
  '319', // UNKNOWN_STATUS_OF_INSERT
  '394', // QUERY_WAS_CANCELLED
  '425', // SYSTEM_ERROR
  '497', // ACCESS_DENIED
  '516', // AUTHENTICATION_FAILED
  '999', // KEEPER_EXCEPTION
  '1000', // POCO_EXCEPTION (network)
])

/**
 * PostgreSQL SQLSTATEs. Data: class 22 (data exception: NUL in text is
 * 22P05/22021) and 23 (integrity: a CHECK refused the row). Outage: classes
 * 08 (connection), 28 (authorization), 40 (rollback: deadlock,
 * serialization), 53 (insufficient resources: disk full), 57 (operator
 * intervention: shutting down), 58 (system error), lock not available
 * (55P03), a missing table (42P01, as for ClickHouse), a missing database
 * (3D000) and missing privileges (42501). Anything else (a syntax error
 * after a schema change, an internal error) is unknown.
 */
function postgresClass(code: string): 'data' | 'outage' | 'unknown' {
  const cls = code.slice(0, 2)
  if (cls === '22' || cls === '23') return 'data'
  if (['08', '28', '40', '53', '57', '58'].includes(cls) || ['55P03', '42P01', '3D000', '42501'].includes(code)) return 'outage'
  return 'unknown'
}

/** Messages of connection loss that carry no code (pg: "Connection terminated unexpectedly"; client timeouts). */
const OUTAGE_MESSAGE = /connection terminated|terminated unexpectedly|timeout|timed out|socket hang up|not started|ECONNREFUSED|ECONNRESET|other side closed/i

/** Classify any error thrown by a store client into an export result. */
export function classifyError(err: unknown): ExportResult {
  const error = err instanceof Error ? err : new Error(String(err))
  const e = error as Error & { code?: unknown; status?: unknown; statusCode?: unknown; retryAfterMs?: number }
  const code = typeof e.code === 'string' ? e.code : typeof e.code === 'number' ? String(e.code) : undefined
  const status = typeof e.statusCode === 'number' ? e.statusCode : typeof e.status === 'number' ? e.status : undefined
  const outage: ExportResult = { status: 'retryable', error, ...(e.retryAfterMs !== undefined && { retryAfterMs: e.retryAfterMs }) }

  if (code && OUTAGE_NETWORK_CODES.has(code)) return outage
  if (error.constructor.name === 'ClickHouseError' && code) {
    if (CLICKHOUSE_DATA.has(code)) return { status: 'permanent', error }
    return CLICKHOUSE_OUTAGE.has(code) ? outage : { status: 'unknown', error }
  }
  // pg's DatabaseError carries a five-character SQLSTATE.
  if (code && /^[0-9A-Z]{5}$/.test(code)) {
    const cls = postgresClass(code)
    return cls === 'data' ? { status: 'permanent', error } : cls === 'outage' ? outage : { status: 'unknown', error }
  }
  if (status !== undefined) {
    if (OUTAGE_HTTP_STATUS.has(status)) return outage
    return status === 413 ? { status: 'permanent', error } : { status: 'unknown', error }
  }
  if (OUTAGE_MESSAGE.test(error.message)) return outage
  return { status: 'unknown', error }
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
