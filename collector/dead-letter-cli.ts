/**
 * `actline dead-letter list | replay`: what the stores refused, and sending
 * it again once the cause is fixed (a constraint dropped, a column widened).
 *
 * Replay writes to each exporter's store directly, so it is stored once
 * however often replay runs: PostgreSQL by its key (ON CONFLICT), ClickHouse
 * by asking first which ids it already holds (`Exporter.stored`; its rollups
 * count every insert, so a row must not be inserted twice). A row that fails again
 * stays in the file with the new reason; the rest leave it. Embedded stores
 * belong to one process: with them, the collector must be stopped first.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Activity } from '../schemas/activity.ts'
import type { Exporter, Logger } from '../schemas/component.ts'
import { PID_FILE, type Config } from './config.ts'
import { deadLetterPath, WAL_DEAD_LETTER, type DeadLetterEntry } from './pipeline/dead-letter.ts'
import { replaceFile } from '../lib/durable-file.ts'
import { livePid } from '../lib/pid-file.ts'
import { enabledExporters } from './components.ts'

const BATCH = 1_000

interface Parsed {
  entries: { line: string; entry: DeadLetterEntry }[]
  unreadable: string[]
}

function readEntries(path: string): Parsed {
  const out: Parsed = { entries: [], unreadable: [] }
  if (!existsSync(path)) return out
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue
    try {
      const entry = JSON.parse(line) as DeadLetterEntry
      if (entry && typeof entry.activity?.id === 'string') out.entries.push({ line, entry })
      else out.unreadable.push(line)
    } catch {
      out.unreadable.push(line)
    }
  }
  return out
}

function deadLetterDir(config: Config): string {
  return join(config.data_dir, 'dead-letter')
}

/** Every dead-letter file there is, exporter name -> path. */
function files(config: Config): Map<string, string> {
  const dir = deadLetterDir(config)
  const names = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.ndjson')).map((f) => f.slice(0, -'.ndjson'.length)) : []
  return new Map(names.sort().map((n) => [n, deadLetterPath(dir, n)]))
}

export interface ListSummary {
  exporter: string
  rows: number
  reasons: { reason: string; rows: number }[]
  first?: string
  last?: string
}

export function listDeadLetters(config: Config): { exporters: ListSummary[]; damaged_log_regions: number } {
  const exporters: ListSummary[] = []
  let damaged = 0
  for (const [name, path] of files(config)) {
    if (name === WAL_DEAD_LETTER) {
      damaged = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).length
      continue
    }
    const { entries } = readEntries(path)
    const reasons = new Map<string, number>()
    for (const { entry } of entries) reasons.set(entry.reason, (reasons.get(entry.reason) ?? 0) + 1)
    exporters.push({
      exporter: name,
      rows: entries.length,
      reasons: [...reasons].map(([reason, rows]) => ({ reason, rows })).sort((a, b) => b.rows - a.rows),
      ...(entries.length && { first: entries[0]!.entry.at, last: entries.at(-1)!.entry.at }),
    })
  }
  return { exporters, damaged_log_regions: damaged }
}

export interface ReplayResult {
  exporter: string
  rows: number
  /** Already in the store (a replay that ran before): not written again. */
  already_stored: number
  replayed: number
  /** Failed again: kept in the file with the new reason. */
  failed: number
}

export async function replayDeadLetters(
  config: Config,
  options: { exporter?: string; dryRun?: boolean; progress?: (text: string) => void },
  logger: Logger,
): Promise<ReplayResult[]> {
  const holder = livePid(join(config.data_dir, PID_FILE))
  const stores = enabledExporters(config, logger).filter((s) => !options.exporter || s.name === options.exporter)
  if (options.exporter && stores.length === 0) throw new Error(`no enabled exporter is named '${options.exporter}' (enabled: ${enabledExporters(config, logger).map((s) => s.name).join(', ')})`)
  // Even a dry run opens the store, to see which rows it already holds.
  const embedded = stores.filter((s) => s.embedded).map((s) => s.name)
  if (holder && embedded.length) {
    throw new Error(`the collector (pid ${holder}) holds the embedded ${embedded.join(' and ')} store: stop it first, then replay`)
  }
  const results: ReplayResult[] = []
  for (const store of stores) {
    const path = deadLetterPath(deadLetterDir(config), store.name)
    const { entries, unreadable } = readEntries(path)
    const result: ReplayResult = { exporter: store.name, rows: entries.length, already_stored: 0, replayed: 0, failed: 0 }
    results.push(result)
    if (entries.length === 0) continue
    await store.exporter.start()
    try {
      const kept: string[] = [...unreadable]
      for (let i = 0; i < entries.length; i += BATCH) {
        const chunk = entries.slice(i, i + BATCH)
        // Stores that key by id (PostgreSQL) drop a repeat themselves; the others say what they hold.
        const known = (await store.exporter.stored?.(chunk.map((c) => c.entry.activity.id))) ?? new Set<string>()
        const todo = chunk.filter((c) => !known.has(c.entry.activity.id))
        result.already_stored += chunk.length - todo.length
        if (options.dryRun) {
          result.replayed += todo.length
          continue
        }
        const failed = await exportEach(store.exporter, todo.map((c) => c.entry.activity))
        for (const c of todo) {
          const reason = failed.get(c.entry.activity.id)
          if (reason === undefined) result.replayed++
          else {
            result.failed++
            kept.push(JSON.stringify({ ...c.entry, at: new Date().toISOString(), reason } satisfies DeadLetterEntry))
          }
        }
        options.progress?.(`${store.name}: ${Math.min(i + BATCH, entries.length)}/${entries.length} rows`)
      }
      if (!options.dryRun) await rewrite(path, kept)
    } finally {
      await store.exporter.shutdown()
    }
  }
  return results
}

/** Export a batch; if the store refuses it, row by row, so one row that still fails does not hold back the others. Returns the failures by id. */
async function exportEach(exporter: Exporter, rows: Activity[]): Promise<Map<string, string>> {
  const failed = new Map<string, string>()
  if (rows.length === 0) return failed
  const all = await exporter.export(rows)
  if (all.status === 'success') return failed
  if (all.status === 'retryable') throw new Error(`${exporter.name} is unavailable: ${all.error.message}`)
  for (const row of rows) {
    const one = await exporter.export([row])
    if (one.status === 'retryable') throw new Error(`${exporter.name} is unavailable: ${one.error.message}`)
    if (one.status !== 'success') failed.set(row.id, one.error.message)
  }
  return failed
}

/** A crash leaves the old file (replayed rows are then found stored) or the new one. */
async function rewrite(path: string, lines: string[]): Promise<void> {
  await replaceFile(path, lines.length ? `${lines.join('\n')}\n` : '')
}
