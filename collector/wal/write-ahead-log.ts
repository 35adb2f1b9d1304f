/**
 * The write-ahead log: an accepted request is a record on disk before the
 * client hears 200, and every exporter reads from here, so a crash loses
 * nothing acknowledged: restart replays from each exporter's cursor.
 *
 * Layout: segment files named by the global byte offset of their first
 * record (`00000000000000000000.wal`), each a run of records
 * (wal-records.ts: header, checksum, JSON); a record never spans two
 * segments. A torn tail (a crash mid-write) is cut at open; damaged bytes
 * elsewhere are skipped and handed to `onCorrupt`, never parsed as data.
 * Each exporter's cursor is in a ledger of its own (cursor-ledger.ts).
 * Appends are all or nothing: a failed write is cut back before anyone
 * hears of it.
 *
 * Durability: `fsync` (default) resolves an append after fdatasync; appends
 * that arrive while one sync runs share the next one (group commit).
 * `interval` syncs every interval_ms; `none` leaves it to the OS.
 */
import { EventEmitter } from 'node:events'
import { constants, mkdirSync, readdirSync } from 'node:fs'
import { open, readFile, rm, stat, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import type { Activity } from '../../schemas/activity.ts'
import type { Logger } from '../../schemas/component.ts'
import { yieldToLoop } from '../../schemas/cooperative.ts'
import { openCursorLedger, type Cursor, type CursorLedger } from './cursor-ledger.ts'
import { decodeRecord, encodeRecord, HEADER, scanSegment } from './records.ts'
import { RecentRecords } from './recent-records.ts'

export type { Cursor } from './cursor-ledger.ts'

export const WriteAheadLogConfig = z
  .object({
    /** Where segments and cursors live. @default '<data_dir>/wal' */
    dir: z.string().min(1).optional(),
    /** When an append counts as stored: after fsync, on a timer, or when the OS writes it. @default 'fsync' */
    durability: z.enum(['fsync', 'interval', 'none']).default('fsync'),
    /** Sync period for durability 'interval'. @default 200 */
    interval_ms: z.number().int().min(1).default(200),
    /**
     * How durability 'fsync' makes a group of appends durable: a write then
     * fdatasync, or a write to a segment opened with O_DSYNC, which returns
     * once the data is on disk (one system call a group instead of two).
     * @default 'fdatasync'
     */
    sync_method: z.enum(['fdatasync', 'o_dsync']).default('fdatasync'),
    /**
     * With durability 'fsync', how long an append that finds the log idle
     * waits for others to share its sync (PostgreSQL's commit_delay), and
     * only while appends come closer together than this on average (as
     * commit_siblings does, by rate): a lone request never waits. Appends
     * that arrive while a sync runs always share the next one. @default 2
     */
    commit_delay_ms: z.number().min(0).max(50).default(2),
    /** Segment size before a new file starts. @default 67108864 */
    segment_bytes: z.number().int().min(1024).default(64 * 1024 * 1024),
    /** Log bytes not yet passed by every exporter; past it ingest answers 429. @default 1073741824 */
    max_bytes: z.number().int().min(4096).default(1024 * 1024 * 1024),
    /**
     * The newest records' bytes also kept in memory as activities, so
     * exporters at the tail read them without the disk and a second parse.
     * Off by default: it saves ~20% of the main thread's CPU per event, but
     * the activities it keeps live long enough to reach V8's old generation,
     * and request p99 and peak RSS under overload grew (BENCHMARKS.md,
     * bench:profile). @default 0
     */
    memory_tail_bytes: z.number().int().min(0).default(0),
  })
  .strict()

export type WriteAheadLogConfig = z.output<typeof WriteAheadLogConfig>

const NAME = /^(\d{20})\.wal$/

interface Segment {
  base: number
  path: string
  /** Bytes of whole records in it. */
  size: number
}

/** Where a record sits and how many activities it holds (the in-memory index). */
interface RecordRef {
  offset: number
  end: number
  count: number
  /** Activities in every record indexed before this one since open: countFrom() is a subtraction, not a walk. */
  before: number
}

export interface ReadResult {
  activities: Activity[]
  /** Offset just past the last record read. */
  next: number
  /** Activities read, before any filter. */
  count: number
}

/** Bytes of the log that fail their checksum or structure: skipped, and handed to `onCorrupt` once each. */
export interface CorruptRegion {
  segment: string
  /** Global log offset of the first bad byte. */
  offset: number
  length: number
  /** The bad bytes, at most 1 MiB of them. */
  bytes: Buffer
  reason: string
}

export interface WalHealth {
  /** The last append failed and none has succeeded since: when, and why. */
  writeFailure?: { at: number; code: string; message: string }
  /** Records skipped because they failed their checksum or structure, since start. */
  corruptRecords: number
  /** Records appended since start (one per accepted request, or per CDC transaction). */
  records: number
  /** fdatasync calls for appends since start: fewer than records when appends share one (group commit). */
  syncs: number
}

export interface WriteAheadLog {
  /** Scan segments, cut a torn tail, build the index. */
  open(): Promise<void>
  /** Resolves with the offset past the record once it is durable per config. */
  append(activities: readonly Activity[]): Promise<number>
  /** Offset past the last whole record written. */
  readonly end: number
  /** Activities in records from `offset` to the end. */
  countFrom(offset: number): number
  /** The newest whole records holding at least `maxActivities` (or all there are). */
  tail(maxActivities: number): Promise<Activity[]>
  /**
   * Whole records from `offset` until `maxActivities` or `maxBytes` of
   * records is reached (at least one record): the last record may take it
   * over by its own size.
   */
  read(offset: number, maxActivities: number, until?: number, maxBytes?: number): Promise<ReadResult>
  /** Register an exporter; returns its persisted cursor. */
  cursor(name: string): Promise<Cursor>
  /** Persist an exporter's cursor; segments every cursor has passed are deleted. */
  saveCursor(name: string, cursor: Cursor): Promise<void>
  /** Log bytes some exporter still needs. */
  retainedBytes(): number
  health(): WalHealth
  /** Emits 'append' after each write. */
  readonly events: EventEmitter
  close(): Promise<void>
}

const CORRUPT_SAMPLE = 1024 * 1024
/** Tries of a cursor write before the error goes up: they are tiny, and what fails them (EIO, EINTR) often passes. */
const CURSOR_TRIES = 5

export function createWriteAheadLog(
  config: WriteAheadLogConfig & { dir: string },
  logger: Logger,
  onCorrupt: (region: CorruptRegion) => void | Promise<void> = () => {},
): WriteAheadLog {
  const segments: Segment[] = []
  const index: RecordRef[] = []
  const cursors = new Map<string, Cursor>()
  const ledgers = new Map<string, CursorLedger>()
  const reported = new Set<number>()
  const walHealth: WalHealth = { corruptRecords: 0, records: 0, syncs: 0 }
  const events = new EventEmitter()
  let handle: FileHandle | undefined
  let end = 0
  let pending: { data: Buffer; activities: readonly Activity[]; resolve: (end: number) => void; reject: (e: Error) => void }[] = []
  const recent = new RecentRecords(config.memory_tail_bytes)
  let flushing: Promise<void> | undefined
  let syncTimer: NodeJS.Timeout | undefined
  let dirty = false
  let closed = false

  let indexed = 0
  function indexRecord(offset: number, recordEnd: number, count: number): void {
    index.push({ offset, end: recordEnd, count, before: indexed })
    indexed += count
  }

  const segmentPath = (base: number) => join(config.dir, `${String(base).padStart(20, '0')}.wal`)
  const dsync = config.durability === 'fsync' && config.sync_method === 'o_dsync'
  const appendFlags = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | (dsync ? constants.O_DSYNC : 0)
  const commitDelay = config.durability === 'fsync' ? config.commit_delay_ms : 0
  // The mean gap between appends (an exponentially weighted average): the commit delay only pays when others are likely to join.
  let lastAppendAt = 0
  let meanGapMs = Infinity

  async function corrupt(segment: Segment, at: number, length: number, bytes: Buffer, reason: string): Promise<void> {
    const offset = segment.base + at
    if (reported.has(offset)) return
    reported.add(offset)
    walHealth.corruptRecords++
    logger.error({ segment: segment.path, offset, bytes: length, reason }, 'wal: skipping damaged log bytes; they are in the dead-letter file')
    await onCorrupt({ segment: segment.path, offset, length, bytes: bytes.subarray(0, CORRUPT_SAMPLE), reason })
  }

  /** Index a segment's records (wal-records.ts); report its damage. Returns the bytes to keep. */
  async function scan(segment: Segment, last: boolean): Promise<number> {
    const buf = await readFile(segment.path)
    const found = scanSegment(buf, last)
    for (const r of found.records) indexRecord(segment.base + r.at, segment.base + r.at + r.length, r.count)
    for (const d of found.damaged) await corrupt(segment, d.at, d.length, buf.subarray(d.at, d.at + d.length), d.reason)
    return found.keep
  }

  /** Start a new segment at `end`. The new file is opened first: if that fails, the current segment stays as it was. */
  async function roll(): Promise<void> {
    const segment = { base: end, path: segmentPath(end), size: 0 }
    const next = await open(segment.path, appendFlags, 0o644)
    if (handle) {
      await handle.datasync().catch(async (err) => {
        await next.close()
        await rm(segment.path, { force: true })
        throw err
      })
      await handle.close()
    }
    segments.push(segment)
    handle = next
  }

  /** Write every byte of `chunks` (writev may write fewer than asked). */
  async function writeAll(fh: FileHandle, chunks: Buffer[]): Promise<void> {
    let rest = chunks
    while (rest.length > 0) {
      const { bytesWritten } = await fh.writev(rest)
      let n = bytesWritten
      while (rest.length > 0 && n >= rest[0]!.length) n -= rest.shift()!.length
      if (n > 0) rest = [rest[0]!.subarray(n), ...rest.slice(1)]
    }
  }

  /**
   * All or nothing: a failed write or sync is cut back to the segment's last
   * whole record before anyone hears of it, so no later record lands behind
   * torn bytes (which a restart would then cut as a torn tail, taking
   * acknowledged records with it), and nothing that failed is acknowledged.
   */
  async function flush(): Promise<void> {
    while (pending.length > 0) {
      const batch = pending
      pending = []
      let segment = segments.at(-1)!
      try {
        const bytes = batch.reduce((n, p) => n + p.data.length, 0)
        if (segment.size > 0 && segment.size + bytes > config.segment_bytes) await roll()
        segment = segments.at(-1)!
        await writeAll(handle!, batch.map((p) => p.data))
        if (config.durability === 'fsync') {
          // With O_DSYNC the write above returned once durable.
          if (!dsync) await handle!.datasync()
          walHealth.syncs++
        } else dirty = true
        walHealth.records += batch.length
        const ends = batch.map((p) => {
          indexRecord(end, end + p.data.length, p.activities.length)
          recent.add(end, end + p.data.length, p.activities)
          return (end += p.data.length)
        })
        segment.size += bytes
        if (walHealth.writeFailure) logger.info({ failed_since: new Date(walHealth.writeFailure.at).toISOString() }, 'wal: appends succeed again')
        walHealth.writeFailure = undefined
        batch.forEach((p, i) => p.resolve(ends[i]!))
        events.emit('append')
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        // One line when appends start failing, not one per request.
        if (!walHealth.writeFailure) logger.error({ err: e.message, code: e.code }, 'wal: append failed; requests answer 503 until it succeeds again')
        walHealth.writeFailure = { at: Date.now(), code: e.code ?? 'EIO', message: e.message }
        await cutBack(segment)
        for (const p of batch) p.reject(e)
        if (e.code === 'ENOSPC' || e.code === 'EDQUOT') await freeWhenFull()
      }
    }
  }

  async function cutBack(segment: Segment): Promise<void> {
    try {
      await handle!.truncate(segment.size)
    } catch (err) {
      // The next append's failure path tries again; until then nothing is acknowledged.
      logger.error({ segment: segment.path, err: (err as Error).message }, 'wal: could not cut a failed write back to the last whole record')
    }
  }

  /**
   * The disk is full. Segments every exporter has passed are freed as the
   * cursors advance, but never the one being written: if it alone fills the
   * disk and every exporter has passed it, start a new one so it can go.
   */
  async function freeWhenFull(): Promise<void> {
    const current = segments.at(-1)!
    if (current.size === 0 || cursors.size === 0 || oldestNeeded() < end) return
    try {
      await roll()
      await removePassed()
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'wal: disk full, could not start a new segment yet')
    }
  }

  function kick(): void {
    // An append can land after the loop saw an empty queue but before this
    // promise settled: look again, or it would wait for the next append.
    flushing ??= (commitDelay > 0 && meanGapMs < commitDelay ? new Promise((r) => setTimeout(r, commitDelay)).then(flush) : flush()).finally(() => {
      flushing = undefined
      if (pending.length > 0) kick()
    })
  }

  function locate(offset: number): number {
    // Binary search: first record starting at or after offset.
    let lo = 0
    let hi = index.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (index[mid]!.offset < offset) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** The lowest offset some exporter still needs (its in-flight range counts); `end` when none is registered. */
  function oldestNeeded(): number {
    return Math.min(end, ...[...cursors.values()].map((c) => c.inflight?.start ?? c.committed))
  }

  async function removePassed(): Promise<void> {
    // No exporter registered yet: nothing may go.
    if (cursors.size === 0) return
    const min = oldestNeeded()
    recent.dropBefore(min)
    while (segments.length > 1 && segments[1]!.base <= min) {
      const gone = segments.shift()!
      await rm(gone.path, { force: true })
      index.splice(0, locate(segments[0]!.base))
      logger.debug({ segment: gone.path }, 'wal: segment removed, every exporter has passed it')
    }
  }

  return {
    events,
    get end() {
      return end
    },

    async open() {
      mkdirSync(config.dir, { recursive: true })
      const names = readdirSync(config.dir).filter((n) => NAME.test(n)).sort()
      for (const name of names) segments.push({ base: Number(NAME.exec(name)![1]), path: join(config.dir, name), size: 0 })
      for (const [i, segment] of segments.entries()) {
        const last = i === segments.length - 1
        segment.size = await scan(segment, last)
        const { size } = await stat(segment.path)
        if (last && size > segment.size) {
          logger.warn({ segment: segment.path, cut_bytes: size - segment.size }, 'wal: cutting a torn tail left by a crash')
          const fh = await open(segment.path, 'r+')
          await fh.truncate(segment.size)
          await fh.datasync()
          await fh.close()
        }
      }
      end = segments.length ? segments.at(-1)!.base + segments.at(-1)!.size : 0
      if (segments.length === 0) await roll()
      else handle = await open(segments.at(-1)!.path, appendFlags, 0o644)
      if (config.durability === 'interval') {
        syncTimer = setInterval(() => {
          if (!dirty || !handle) return
          dirty = false
          handle.datasync().catch((err) => logger.error({ err: (err as Error).message }, 'wal: periodic sync failed'))
        }, config.interval_ms)
        syncTimer.unref()
      }
      if (index.length) logger.info({ records: index.length, bytes: end - index[0]!.offset }, 'wal: opened with records to replay')
    },

    append(activities) {
      if (closed) return Promise.reject(new Error('write-ahead log is closed'))
      const data = encodeRecord(activities)
      const now = performance.now()
      if (lastAppendAt > 0) meanGapMs = meanGapMs === Infinity ? now - lastAppendAt : 0.8 * meanGapMs + 0.2 * (now - lastAppendAt)
      lastAppendAt = now
      return new Promise<number>((resolve, reject) => {
        pending.push({ data, activities, resolve, reject })
        kick()
      })
    },

    async tail(maxActivities) {
      let i = index.length
      for (let n = 0; i > 0 && n < maxActivities; ) n += index[--i]!.count
      return i < index.length ? (await this.read(index[i]!.offset, Infinity)).activities : []
    },

    countFrom(offset) {
      const i = locate(offset)
      return i < index.length ? indexed - index[i]!.before : 0
    },

    async read(offset, maxActivities, until = Infinity, maxBytes = Infinity) {
      const first = locate(offset)
      const refs: RecordRef[] = []
      let count = 0
      let bytes = 0
      for (let i = first; i < index.length && index[i]!.end <= until; i++) {
        const ref = index[i]!
        if (count >= maxActivities || bytes >= maxBytes) break
        refs.push(ref)
        count += ref.count
        bytes += ref.end - ref.offset
      }
      const activities: Activity[] = []
      // Kept in memory (recent-records.ts), else one read per segment spanned, then walk the records in memory.
      for (let i = 0; i < refs.length; ) {
        const kept = recent.get(refs[i]!.offset)
        if (kept) {
          for (const a of kept) activities.push(a)
          i++
          continue
        }
        const segment = segments.findLast((s) => s.base <= refs[i]!.offset)!
        let j = i
        while (j + 1 < refs.length && refs[j + 1]!.offset < segment.base + segment.size && !recent.get(refs[j + 1]!.offset)) j++
        const from = refs[i]!.offset
        const buf = Buffer.allocUnsafe(refs[j]!.end - from)
        const fh = await open(segment.path, 'r')
        try {
          await fh.read(buf, 0, buf.length, from - segment.base)
        } finally {
          await fh.close()
        }
        for (let k = i; k <= j; k++) {
          // A record is one request (~250 KB of JSON for 500 events): parse
          // one per turn of the loop, so a 10k-row read never holds off
          // ingest for tens of milliseconds.
          if (k > i) await yieldToLoop()
          const at = refs[k]!.offset - from
          const length = buf.readUInt32LE(at)
          const parsed = decodeRecord(buf, at)
          if (!parsed) {
            // Skipped, not retried: the same bytes fail the same way forever.
            await corrupt(segment, refs[k]!.offset - segment.base, HEADER + length, buf.subarray(at, at + HEADER + length), 'record fails its checksum')
            continue
          }
          for (const a of parsed) activities.push(a)
        }
        i = j + 1
      }
      return { activities, count, next: refs.at(-1)?.end ?? offset }
    },

    async cursor(name) {
      const ledger = ledgers.get(name) ?? (await openCursorLedger(config.dir, name, config.durability !== 'none'))
      ledgers.set(name, ledger)
      const cursor = (await ledger.read()) ?? { committed: segments[0]?.base ?? 0 }
      cursors.set(name, cursor)
      return cursor
    },

    async saveCursor(name, cursor) {
      const ledger = ledgers.get(name)
      if (!ledger) throw new Error(`wal: cursor ${name} was never registered`)
      for (let attempt = 1; ; attempt++) {
        try {
          await ledger.write(cursor)
          break
        } catch (err) {
          if (attempt >= CURSOR_TRIES) throw err
          logger.warn({ exporter: name, attempt, err: (err as Error).message }, 'wal: cursor write failed, trying again')
          await new Promise((r) => setTimeout(r, 20 * 2 ** attempt))
        }
      }
      cursors.set(name, cursor)
      await removePassed()
    },

    health: () => walHealth,

    retainedBytes() {
      return end - oldestNeeded()
    },

    async close() {
      if (closed) return
      closed = true
      clearInterval(syncTimer)
      await flushing
      await Promise.allSettled([...ledgers.values()].map((l) => l.close()))
      if (handle) {
        if (config.durability !== 'none') await handle.datasync()
        await handle.close()
        handle = undefined
      }
    },
  }
}

