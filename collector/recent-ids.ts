/**
 * Drops activities whose id the collector accepted a moment ago, before they
 * reach the write-ahead log. A client that retries a request whose reply was
 * lost (a timeout, a dropped connection) re-sends ids already stored; the
 * PostgreSQL audit trail ignores them by key (ON CONFLICT), but ClickHouse's
 * MergeTree would keep a second row, and every count and rollup with it.
 *
 * Two generations, swapped when the current one holds max_ids / 2 or half the
 * window has passed: an id is remembered for at most the window, and at least
 * half of it or the time to accept max_ids / 2 activities, whichever is
 * shorter (with the defaults at 10,000 activities/s: 25 s). Not covered: a
 * re-send after the collector restarted, or later than that.
 *
 * Each generation is an open-addressing table of the ids' 128 bits in a
 * Uint32Array, 32 bytes a remembered id: a Set of id strings costs ~100, and
 * this memory sits under the memory limiter's soft limit all the time.
 */
import { z } from 'zod'
import type { Activity } from '../schemas/activity.ts'

export const RecentIdsConfig = z
  .object({
    /** Ids remembered across both generations (32 bytes each); 0 turns the check off. @default 500000 */
    max_ids: z.number().int().min(0).default(500_000),
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

/** A set of 128-bit ids with linear probing; the all-zero id marks an empty slot (the nil UUID is never remembered). */
class IdTable {
  private readonly slots: Uint32Array
  private readonly mask: number
  size = 0

  constructor(capacity: number) {
    // At most half full, so probes stay short.
    let n = 16
    while (n < capacity * 2) n *= 2
    this.slots = new Uint32Array(n * 4)
    this.mask = n - 1
  }

  /** Slot index holding `id`, or the empty slot where it would go (as -1 - index). */
  private find(a: number, b: number, c: number, d: number): number {
    let i = (Math.imul(a ^ c, 0x9e3779b1) ^ b ^ d) & this.mask
    for (;;) {
      const at = i * 4
      const s = this.slots
      if (s[at] === a && s[at + 1] === b && s[at + 2] === c && s[at + 3] === d) return i
      if ((s[at]! | s[at + 1]! | s[at + 2]! | s[at + 3]!) === 0) return -1 - i
      i = (i + 1) & this.mask
    }
  }

  has(id: Uint32Array): boolean {
    return this.find(id[0]!, id[1]!, id[2]!, id[3]!) >= 0
  }

  add(id: Uint32Array): void {
    const i = this.find(id[0]!, id[1]!, id[2]!, id[3]!)
    if (i >= 0) return
    this.slots.set(id, (-1 - i) * 4)
    this.size++
  }
}

const words = new Uint32Array(4)

/** The id's 128 bits in `words`; false for text that is not a UUID or is the nil UUID. */
function parse(id: string): boolean {
  if (id.length !== 36) return false
  const hex = id.slice(0, 8) + id.slice(9, 13) + id.slice(14, 18) + id.slice(19, 23) + id.slice(24)
  for (let w = 0; w < 4; w++) {
    const v = Number.parseInt(hex.slice(w * 8, w * 8 + 8), 16)
    if (Number.isNaN(v)) return false
    words[w] = v
  }
  return (words[0]! | words[1]! | words[2]! | words[3]!) !== 0
}

export function createRecentIds(config: RecentIdsConfig, now: () => number = Date.now): RecentIds {
  const half = Math.max(1, Math.floor(config.max_ids / 2))
  let current = new IdTable(half)
  let previous = new IdTable(half)
  let rotatedAt = now()

  const rotate = () => {
    if (current.size < half && now() - rotatedAt < config.window_ms / 2) return
    previous = current
    current = new IdTable(half)
    rotatedAt = now()
  }

  return {
    fresh(activities) {
      if (config.max_ids === 0) return activities as Activity[]
      rotate()
      const seen = new Set<string>()
      const out: Activity[] = []
      for (const a of activities) {
        if (seen.has(a.id)) continue
        seen.add(a.id)
        if (parse(a.id) && (current.has(words) || previous.has(words))) continue
        out.push(a)
      }
      return out
    },
    remember(activities) {
      if (config.max_ids === 0) return
      for (const a of activities) {
        if (!parse(a.id)) continue
        current.add(words)
        if (current.size >= half) rotate()
      }
    },
  }
}
