/**
 * What every receiver does around its own parsing: refuse a request before
 * reading it when the pipeline is full, and store what it accepted before
 * answering. One place, so every way in keeps the same promise: a success
 * reply means the activities are in the write-ahead log.
 */
import type { FastifyBaseLogger, onRequestAsyncHookHandler } from 'fastify'
import type { Activity } from '../../schemas/activity.ts'
import type { Ingest } from '../../schemas/component.ts'
import { ActlineError } from '../../schemas/errors.ts'
import type { ReceiverStats } from './stats.ts'

/**
 * An onRequest hook: refusing before the body is read keeps the CPU for the
 * stores to catch up, instead of parsing requests only to refuse them.
 * OTLP asks for 503 where the activity API answers 429 (both retryable).
 */
export function refuseWhenFull(
  ingest: Ingest,
  stats: ReceiverStats,
  code: 'ACT_ERR_BACKPRESSURE' | 'ACT_ERR_OVERLOADED',
): onRequestAsyncHookHandler {
  return async () => {
    const refusal = ingest.refusal()
    if (!refusal) return ingest.admitted?.()
    stats.refusedRequests++
    const { reason } = refusal
    if (refusal.kind === 'storage') {
      throw new ActlineError(
        'ACT_ERR_STORAGE_UNAVAILABLE',
        `the collector cannot store requests now (${reason}); nothing was accepted, retry after the indicated delay`,
        { reason, retry_after_seconds: STORAGE_RETRY_S, nothing_was_accepted: true },
        { 'retry-after': String(STORAGE_RETRY_S) },
      )
    }
    throw new ActlineError(
      code,
      `the collector is at capacity (${reason}); retry after the indicated delay`,
      { reason, retry_after_seconds: 1, nothing_was_accepted: true },
      { 'retry-after': '1' },
    )
  }
}

/** What a client waits when the log cannot be written: long enough for an exporter to free a segment. */
const STORAGE_RETRY_S = 5

/** Durable before the reply: a 200 means stored. */
export async function store(ingest: Ingest, activities: readonly Activity[], log: FastifyBaseLogger): Promise<void> {
  try {
    await ingest.write(activities)
  } catch (err) {
    // The log says once when appends start and stop failing; per request is noise.
    log.debug({ err }, 'write-ahead log append failed')
    throw new ActlineError(
      'ACT_ERR_STORAGE_UNAVAILABLE',
      'the collector could not store the request; nothing was accepted, retry later',
      { reason: (err as NodeJS.ErrnoException).code ?? 'write failed', retry_after_seconds: STORAGE_RETRY_S, nothing_was_accepted: true },
      { 'retry-after': String(STORAGE_RETRY_S) },
    )
  }
}
