/**
 * The log's newest records, kept as the activities they were appended as, so
 * a reader at the tail (every exporter, most of the time) takes them without
 * reading the disk and parsing the JSON again: once per exporter, that was
 * the largest of the collector's own stages (BENCHMARKS.md, bench:profile).
 *
 * Only what is already on disk is kept (a record enters once its write
 * succeeded), so nothing about durability changes: after a restart the
 * readers read the disk, as a reader that fell behind the budget does now.
 * Bounded by the records' encoded bytes; a record every cursor has passed
 * leaves at once. Off unless wal.memory_tail_bytes is set: what it saves in
 * CPU it cost, when measured, in GC, latency and memory (its config key says
 * how much).
 */
import type { Activity } from '../../schemas/activity.ts'

interface Kept {
  offset: number
  end: number
  bytes: number
  activities: readonly Activity[]
}

export class RecentRecords {
  private readonly byOffset = new Map<number, Kept>()
  // Oldest first: records are appended in offset order.
  private readonly order: Kept[] = []
  private head = 0
  private bytes = 0

  constructor(private readonly budget: number) {}

  add(offset: number, end: number, activities: readonly Activity[]): void {
    if (this.budget <= 0) return
    const kept = { offset, end, bytes: end - offset, activities }
    this.byOffset.set(offset, kept)
    this.order.push(kept)
    this.bytes += kept.bytes
    while (this.bytes > this.budget && this.head < this.order.length) this.evict()
  }

  /** The activities of the record starting at `offset`, when it is still kept. */
  get(offset: number): readonly Activity[] | undefined {
    return this.byOffset.get(offset)?.activities
  }

  /** Drops the records that end at or before `offset`: every reader has passed them. */
  dropBefore(offset: number): void {
    while (this.head < this.order.length && this.order[this.head]!.end <= offset) this.evict()
  }

  private evict(): void {
    const gone = this.order[this.head++]!
    this.byOffset.delete(gone.offset)
    this.bytes -= gone.bytes
    // Compact now and then rather than shift() per record (O(n) each).
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order.splice(0, this.head)
      this.head = 0
    }
  }
}
