/**
 * How far into a huge transaction the log already holds it. Such a
 * transaction goes to the log in pieces before its commit is confirmed to the
 * slot; after a crash the slot sends it again from its start. The ids of a
 * piece are the same the second time, but the collector's memory of recent
 * ids is bounded (pipeline.dedup.max_ids), and a store without a key on them
 * (ClickHouse) would keep a second copy of what it forgot. So each piece,
 * once durable, is recorded here (written, fsynced, renamed): the read
 * after a restart passes over that many changes of that commit. A record
 * lost in the crash only means a piece is sent again, where the dedup
 * window and the audit trail's key catch it; never a change skipped.
 */
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { replaceFile } from '../../../lib/durable-file.ts'

export interface Progress {
  /** Changes of the transaction committed at `commitLsn` already durable in the log: 0 for any other. */
  writtenOf(commitLsn: string): number
  save(p: { commit_lsn: string; written: number }): Promise<void>
}

export function createProgress(file: string): Progress {
  let saved: { commit_lsn: string; written: number } | undefined
  try {
    const p = JSON.parse(readFileSync(file, 'utf8'))
    if (typeof p?.commit_lsn === 'string' && Number.isSafeInteger(p.written) && p.written > 0) saved = p
  } catch {
    // None yet, or torn: nothing is passed over.
  }
  return {
    writtenOf: (commitLsn) => (saved?.commit_lsn === commitLsn ? saved.written : 0),
    async save(p) {
      mkdirSync(dirname(file), { recursive: true })
      await replaceFile(file, JSON.stringify(p))
      saved = p
    },
  }
}
