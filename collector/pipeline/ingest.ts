/**
 * Where every activity enters the pipeline, whoever sends it (a receiver, or
 * the query API's own audit of an export): admission (log bytes, memory, a
 * log that cannot be written), deduplication of a client's retries, then the
 * write-ahead log. Resolves once the activities are durable.
 */
import type { Ingest, Refusal } from '../../schemas/component.ts'
import type { WriteAheadLog } from '../wal/write-ahead-log.ts'
import type { RecentIds } from './dedup.ts'
import type { MemoryLimiter } from './memory-limiter.ts'

/** How long ingest answers 503 after the log failed a write, before a request may try again. */
const STORAGE_PAUSE_MS = 1_000

export interface IngestOptions {
  wal: WriteAheadLog
  /** Refuse once the log holds more than this (wal.max_bytes). */
  maxBytes: number
  memory: MemoryLimiter
  recentIds: RecentIds
  /** Counts activities dropped as a retry's duplicates. */
  onDuplicates(count: number): void
}

export function createIngest({ wal, maxBytes, memory, recentIds, onDuplicates }: IngestOptions): Ingest {
  return {
    refusal(): Refusal | undefined {
      const failure = wal.health().writeFailure
      if (failure && Date.now() - failure.at < STORAGE_PAUSE_MS) {
        return { kind: 'storage', reason: `the write-ahead log cannot be written: ${failure.code === 'ENOSPC' ? 'its disk is full' : failure.code}` }
      }
      if (wal.retainedBytes() > maxBytes) return { kind: 'backpressure', reason: 'write-ahead log full' }
      if (memory.over()) return { kind: 'backpressure', reason: 'memory limit' }
      return undefined
    },
    admitted: () => memory.admitted(),
    async write(activities) {
      const { fresh, commit } = recentIds.admit(activities)
      if (fresh.length < activities.length) onDuplicates(activities.length - fresh.length)
      if (fresh.length > 0) await wal.append(fresh)
      commit()
    },
  }
}
