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
import type { Activity } from '../../schemas/activity.ts'

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
  /**
   * The activities not seen within the window, each id once; `commit()` once
   * they are durably stored remembers them (a failed write must not hide its
   * retry). Each id is parsed once, here.
   */
  admit(activities: readonly Activity[]): { fresh: Activity[]; commit(): void }
  /** Ids accepted before a restart (the log's tail): those received within the window are remembered again. */
  restore(activities: readonly Activity[]): number
  /** How many recent ids restore() may use. */
  readonly capacity: number
}

/** A set of 128-bit ids with linear probing; the all-zero id marks an empty slot, so the nil UUID has a flag of its own. */
class IdTable {
  private readonly slots: Uint32Array
  private readonly mask: number
  private nil = false
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

  has(ids: Uint32Array, at: number): boolean {
    if (isNil(ids, at)) return this.nil
    return this.find(ids[at]!, ids[at + 1]!, ids[at + 2]!, ids[at + 3]!) >= 0
  }

  add(ids: Uint32Array, at: number): void {
    if (isNil(ids, at)) {
      if (!this.nil) this.size++
      this.nil = true
      return
    }
    const i = this.find(ids[at]!, ids[at + 1]!, ids[at + 2]!, ids[at + 3]!)
    if (i >= 0) return
    this.slots.set(ids.subarray(at, at + 4), (-1 - i) * 4)
    this.size++
  }
}

function isNil(ids: Uint32Array, at: number): boolean {
  return (ids[at]! | ids[at + 1]! | ids[at + 2]! | ids[at + 3]!) === 0
}

/** The id's 128 bits into `into` at `at`. Ids are validated UUIDs by now. */
function parse(id: string, into: Uint32Array, at: number): void {
  into[at] = Number.parseInt(id.slice(0, 8), 16)
  into[at + 1] = Number.parseInt(id.slice(9, 13) + id.slice(14, 18), 16)
  into[at + 2] = Number.parseInt(id.slice(19, 23) + id.slice(24, 28), 16)
  into[at + 3] = Number.parseInt(id.slice(28, 36), 16)
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

  const none = () => {}
  return {
    capacity: half,
    restore(activities) {
      if (config.max_ids === 0) return 0
      const since = now() - config.window_ms
      const recent = activities.filter((a) => a.received_at >= since).slice(-half)
      const { fresh, commit } = this.admit(recent)
      commit()
      return fresh.length
    },
    admit(activities) {
      if (config.max_ids === 0) return { fresh: activities as Activity[], commit: none }
      rotate()
      const ids = new Uint32Array(activities.length * 4)
      const seen = new Set<string>()
      const fresh: Activity[] = []
      let n = 0
      for (const a of activities) {
        if (seen.has(a.id)) continue
        seen.add(a.id)
        const at = n * 4
        parse(a.id, ids, at)
        if (current.has(ids, at) || previous.has(ids, at)) continue
        fresh.push(a)
        n++
      }
      return {
        fresh,
        commit() {
          for (let at = 0; at < n * 4; at += 4) {
            current.add(ids, at)
            if (current.size >= half) rotate()
          }
        },
      }
    },
  }
}
