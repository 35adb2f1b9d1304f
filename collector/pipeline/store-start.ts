/**
 * A store that is down when the collector starts must not stop it: ingest
 * goes into the write-ahead log regardless, and the store's exporter starts
 * in the background, retried with the pipeline's backoff (connection and
 * migrations alike) until it is up. Its reader of the log starts then and
 * drains the backlog. /readyz says "not connected" meanwhile.
 */
import type { Exporter, Logger } from '../../schemas/component.ts'
import { backoffDelay } from '../../lib/backoff.ts'
import { sleep } from '../../lib/sleep.ts'
import type { RetryConfig } from './retry.ts'

export interface StoreStart {
  /** Why it is not started yet (the last attempt's error, or 'connecting'), or undefined once started. */
  pending(): string | undefined
  /** Resolves once started (and `then` ran), or once stopped. */
  readonly done: Promise<void>
  /** Resolves when the first attempt has succeeded or failed. */
  readonly firstAttempt: Promise<void>
  /** Stop retrying; resolves when no attempt is running any more. */
  stop(): Promise<void>
}

export function startInBackground(exporter: Exporter, retry: RetryConfig, logger: Logger, then: () => Promise<void> = async () => {}): StoreStart {
  let pending: string | undefined = 'connecting'
  const stopping = new AbortController()
  let attempted: () => void = () => {}
  const firstAttempt = new Promise<void>((resolve) => (attempted = resolve))
  const done = (async () => {
    for (let attempt = 0; !stopping.signal.aborted; attempt++) {
      try {
        await exporter.start()
        pending = undefined
        attempted()
        if (attempt > 0) logger.info({ exporter: exporter.name, attempts: attempt + 1 }, `${exporter.name}: connected`)
        await then()
        return
      } catch (err) {
        attempted()
        pending = (err as Error).message
        const delay = Math.max(100, backoffDelay(retry, attempt))
        logger.warn({ exporter: exporter.name, attempt: attempt + 1, retry_in_ms: delay, err: pending }, `${exporter.name}: cannot start the store yet; ingest goes on into the write-ahead log, retrying`)
        await sleep(delay, stopping.signal)
      }
    }
    attempted()
  })()
  return {
    pending: () => pending,
    done,
    firstAttempt,
    async stop() {
      stopping.abort()
      await done
    },
  }
}
