/**
 * What could not be delivered, kept rather than lost: rows a store refused
 * for good (isolated to the row), and log bytes that failed their checksum.
 * One NDJSON file per exporter under <data_dir>/dead-letter, a line per row
 * with the time and the reason; `wal.ndjson` holds damaged log bytes.
 * `actline dead-letter list | replay` reads them back (collector/dead-letter-cli.ts).
 */
import { mkdirSync } from 'node:fs'
import { appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Activity } from '../../schemas/activity.ts'
import type { CorruptRegion } from '../wal/write-ahead-log.ts'

/** A line of an exporter's dead-letter file. */
export interface DeadLetterEntry {
  at: string
  exporter: string
  reason: string
  /** The row as the collector accepted it. */
  activity: Activity
}

/** A line of wal.ndjson: bytes of the log that could not be read. */
export interface DamagedLogEntry {
  at: string
  segment: string
  offset: number
  length: number
  reason: string
  /** Base64 of the bad bytes (at most 1 MiB of them). */
  bytes: string
}

export interface DeadLetter {
  write(rows: readonly Activity[], reason: Error): Promise<void>
  readonly path: string
}

export const WAL_DEAD_LETTER = 'wal'

export function deadLetterPath(dir: string, name: string): string {
  return join(dir, `${name}.ndjson`)
}

async function append(path: string, lines: string[]): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true })
  await appendFile(path, `${lines.join('\n')}\n`, { flush: true })
}

export function createDeadLetter(dir: string, exporter: string): DeadLetter {
  const path = deadLetterPath(dir, exporter)
  return {
    path,
    async write(rows, reason) {
      const at = new Date().toISOString()
      await append(path, rows.map((activity) => JSON.stringify({ at, exporter, reason: reason.message, activity } satisfies DeadLetterEntry)))
    },
  }
}

/** Where the write-ahead log hands the bytes it had to skip. */
export function damagedLogWriter(dir: string): (region: CorruptRegion) => Promise<void> {
  const path = deadLetterPath(dir, WAL_DEAD_LETTER)
  return (region) =>
    append(path, [
      JSON.stringify({
        at: new Date().toISOString(),
        segment: region.segment,
        offset: region.offset,
        length: region.length,
        reason: region.reason,
        bytes: region.bytes.toString('base64'),
      } satisfies DamagedLogEntry),
    ])
}
