/**
 * Rows a store refused for good (a permanent error, isolated to the row), so
 * they never block the stream and are never silently lost: one NDJSON file
 * per exporter under <data_dir>/dead-letter, a line per row with the reason.
 * Replay them with any tool that reads NDJSON once the cause is fixed; the
 * `activity` field is the row as the collector accepted it.
 */
import { mkdirSync } from 'node:fs'
import { appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Activity } from '../schemas/activity.ts'

export interface DeadLetter {
  write(rows: readonly Activity[], reason: Error): Promise<void>
  readonly path: string
}

export function createDeadLetter(dir: string, exporter: string): DeadLetter {
  const path = join(dir, `${exporter}.ndjson`)
  return {
    path,
    async write(rows, reason) {
      mkdirSync(dir, { recursive: true })
      const at = new Date().toISOString()
      const lines = rows.map((activity) => JSON.stringify({ at, exporter, reason: reason.message, activity })).join('\n')
      await appendFile(path, `${lines}\n`, { flush: true })
    },
  }
}
