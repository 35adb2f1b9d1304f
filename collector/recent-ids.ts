/**
 * Drops activities whose id the collector accepted a moment ago, before they
 * reach the write-ahead log. A client that retries a request whose reply was
 * lost (a timeout, a dropped connection) re-sends ids already stored; the
 * PostgreSQL audit trail ignores them by key (ON CONFLICT), but ClickHouse's
 * MergeTree would keep a second row, and every count and rollup with it.
 *
 * Two generations of ids, swapped when the current one holds max_ids / 2 or
 * half the window has passed, so memory is bounded (about 100 bytes an id)
 * and an id is remembered for at most the window and at least half of it or
 * the time to accept max_ids / 2 activities, whichever is shorter (at 10,000
 * activities/s and the defaults: 10 s). A client's retry comes seconds after
 * the original. Not covered: a re-send after the collector restarted, or past
 * that time; docs/architecture.md says so.
 */
import { z } from 'zod'
import type { Activity } from '../schemas/activity.ts'

export const RecentIdsConfig = z
  .object({
    /** Ids remembered across both generations; 0 turns the check off. @default 200000 */
    max_ids: z.number().int().min(0).default(200_000),
    /** Longest an id is remembered. @default 600000 (10 minutes) */
    window_ms: z.number().int().min(1000).default(600_000),
  })
  .strict()

export type RecentIdsConfig = z.output<typeof RecentIdsConfig>

export interface RecentIds {
  /** The activities not seen within the window, each id once. */
  fresh(activities: readonly Activity[]): Activity[]
  /** Remember ids once they are durably stored (a failed write must not hide its retry). */
  remember(activities: readonly Activity[]): void
}

export function createRecentIds(config: RecentIdsConfig, now: () => number = Date.now): RecentIds {
  const half = Math.floor(config.max_ids / 2)
  let current = new Set<string>()
  let previous = new Set<string>()
  let rotatedAt = now()

  const rotate = () => {
    if (current.size < half && now() - rotatedAt < config.window_ms / 2) return
    previous = current
    current = new Set()
    rotatedAt = now()
  }

  return {
    fresh(activities) {
      if (config.max_ids === 0) return activities as Activity[]
      rotate()
      const seen = new Set<string>()
      const out: Activity[] = []
      for (const a of activities) {
        if (current.has(a.id) || previous.has(a.id) || seen.has(a.id)) continue
        seen.add(a.id)
        out.push(a)
      }
      return out
    },
    remember(activities) {
      if (config.max_ids === 0) return
      for (const a of activities) {
        current.add(a.id)
        if (current.size >= half) rotate()
      }
    },
  }
}
