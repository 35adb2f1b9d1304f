/**
 * What a failed export means, the part every store shares. Three answers
 * (schemas/component.ts): an outage (retry without bound: the rows are fine
 * and the store will be back), a data error (these rows will fail the same
 * way forever: split and dead-letter them), or unknown (retry for a bounded
 * time, then treat as data). Retrying a data error forever stalls the
 * exporter; calling an outage a data error loses rows to the dead-letter
 * file. So an error is an outage only when the code says the *store* is
 * unwell (down, overloaded, read-only, missing a table, refusing our
 * credentials), data only when the code says the *rows* are bad, and
 * anything else is unknown.
 *
 * This base knows the network and HTTP; each exporter's folder adds its
 * store's own codes (clickhouse/classify.ts, postgres/classify.ts), asked
 * after the network codes and before the HTTP status.
 */
import type { ExportResult } from '../schemas/component.ts'

const OUTAGE_NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR',
])

const OUTAGE_HTTP_STATUS = new Set([401, 403, 407, 408, 429, 500, 502, 503, 504])

/**
 * Messages of connection loss that carry no code (pg: "Connection terminated
 * unexpectedly", and "Client has encountered a connection error and is not
 * queryable" for the next statement of a transaction on a cut connection;
 * client timeouts).
 */
const OUTAGE_MESSAGE = /connection terminated|terminated unexpectedly|not queryable|timeout|timed out|socket hang up|not started|ECONNREFUSED|ECONNRESET|other side closed/i

/** A store's own reading of an error: its class, or undefined when its codes say nothing. */
export type StoreClassifier = (error: Error & { code?: unknown }, code: string | undefined) => 'outage' | 'data' | 'unknown' | undefined

/** Classify any error thrown by a store client into an export result. */
export function classifyError(err: unknown, store: StoreClassifier = () => undefined): ExportResult {
  const error = err instanceof Error ? err : new Error(String(err))
  const e = error as Error & { code?: unknown; status?: unknown; statusCode?: unknown; retryAfterMs?: number }
  const code = typeof e.code === 'string' ? e.code : typeof e.code === 'number' ? String(e.code) : undefined
  const status = typeof e.statusCode === 'number' ? e.statusCode : typeof e.status === 'number' ? e.status : undefined
  const outage: ExportResult = { status: 'retryable', error, ...(e.retryAfterMs !== undefined && { retryAfterMs: e.retryAfterMs }) }

  if (code && OUTAGE_NETWORK_CODES.has(code)) return outage
  const own = store(e, code)
  if (own !== undefined) return own === 'outage' ? outage : own === 'data' ? { status: 'permanent', error } : { status: 'unknown', error }
  if (status !== undefined) {
    if (OUTAGE_HTTP_STATUS.has(status)) return outage
    return status === 413 ? { status: 'permanent', error } : { status: 'unknown', error }
  }
  if (OUTAGE_MESSAGE.test(error.message)) return outage
  return { status: 'unknown', error }
}

/** Run a store write and report its outcome instead of throwing (the Exporter contract). */
export async function reportOutcome(write: () => Promise<unknown>, store?: StoreClassifier): Promise<ExportResult> {
  try {
    await write()
    return { status: 'success' }
  } catch (err) {
    return classifyError(err, store)
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
