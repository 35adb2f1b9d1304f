/**
 * The write-ahead log: an accepted request is a record on disk before the
 * client hears 200, and every exporter reads from here, so a crash loses
 * nothing acknowledged: restart replays from each exporter's cursor.
 *
 * Layout: segment files named by the global byte offset of their first
 * record (`00000000000000000000.wal`). A record is a 12-byte header
 * (payload length, CRC-32 of the payload, activity count; little-endian
 * u32s) and a JSON array of normalized activities. A record never spans two
 * segments. A torn or corrupt tail (a crash mid-write) fails its length or
 * checksum and is cut at open, never parsed as data.
 *
 * Durability: `fsync` (default) resolves an append after fdatasync; appends
 * that arrive while one sync runs share the next one (group commit).
 * `interval` syncs every interval_ms; `none` leaves it to the OS.
 */
import { EventEmitter } from 'node:events'
import { mkdirSync, readdirSync } from 'node:fs'
import { open, rename, rm, stat, writeFile, readFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { z } from 'zod'
import type { Activity } from '../schemas/activity.ts'
import type { Logger } from '../schemas/component.ts'
import { yieldToLoop } from '../schemas/cooperative.ts'

export const WriteAheadLogConfig = z
  .object({
    /** Where segments and cursors live. @default '<data_dir>/wal' */
    dir: z.string().min(1).optional(),
    /** When an append counts as stored: after fsync, on a timer, or when the OS writes it. @default 'fsync' */
    durability: z.enum(['fsync', 'interval', 'none']).default('fsync'),
    /** Sync period for durability 'interval'. @default 200 */
    interval_ms: z.number().int().min(1).default(200),
    /** Segment size before a new file starts. @default 67108864 */
    segment_bytes: z.number().int().min(1024).default(64 * 1024 * 1024),
    /** Log bytes not yet passed by every exporter; past it ingest answers 429. @default 1073741824 */
    max_bytes: z.number().int().min(4096).default(1024 * 1024 * 1024),
  })
  .strict()

export type WriteAheadLogConfig = z.output<typeof WriteAheadLogConfig>

const HEADER = 12
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
}

export interface ReadResult {
  activities: Activity[]
  /** Offset just past the last record read. */
  next: number
  /** Activities read, before any filter. */
  count: number
}

export interface Cursor {
  /** Everything before it is in the store. */
  committed: number
  /** A range handed to the store and not yet confirmed; replayed as-is after a crash. */
  inflight?: { start: number; end: number }
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
  /** Whole records from `offset` until `maxActivities` is reached: the last record may take it over by its own size. */
  read(offset: number, maxActivities: number, until?: number): Promise<ReadResult>
  /** Register an exporter; returns its persisted cursor. */
  cursor(name: string): Promise<Cursor>
  /** Persist an exporter's cursor; segments every cursor has passed are deleted. */
  saveCursor(name: string, cursor: Cursor): Promise<void>
  /** Log bytes some exporter still needs. */
  retainedBytes(): number
  /** Emits 'append' after each write. */
  readonly events: EventEmitter
  close(): Promise<void>
}

export class WalCorruptionError extends Error {}

export function createWriteAheadLog(config: WriteAheadLogConfig & { dir: string }, logger: Logger): WriteAheadLog {
  const segments: Segment[] = []
  const index: RecordRef[] = []
  const cursors = new Map<string, Cursor>()
  const events = new EventEmitter()
  let handle: FileHandle | undefined
  let end = 0
  let pending: { data: Buffer; count: number; resolve: (end: number) => void; reject: (e: Error) => void }[] = []
  let flushing: Promise<void> | undefined
  let syncTimer: NodeJS.Timeout | undefined
  let dirty = false
  let closed = false

  const segmentPath = (base: number) => join(config.dir, `${String(base).padStart(20, '0')}.wal`)
  const cursorPath = (name: string) => join(config.dir, `cursor-${name}.json`)

  async function scan(segment: Segment, verify: boolean): Promise<number> {
    const fh = await open(segment.path, 'r')
    try {
      const { size } = await fh.stat()
      const header = Buffer.alloc(HEADER)
      let pos = 0
      while (pos + HEADER <= size) {
        await fh.read(header, 0, HEADER, pos)
        const length = header.readUInt32LE(0)
        const count = header.readUInt32LE(8)
        if (length === 0 || pos + HEADER + length > size) break
        if (verify) {
          const payload = Buffer.alloc(length)
          await fh.read(payload, 0, length, pos + HEADER)
          if (crc32(payload) !== header.readUInt32LE(4)) break
        }
        index.push({ offset: segment.base + pos, end: segment.base + pos + HEADER + length, count })
        pos += HEADER + length
      }
      return pos
    } finally {
      await fh.close()
    }
  }

  async function roll(): Promise<void> {
    if (handle) {
      await handle.datasync()
      await handle.close()
    }
    const segment = { base: end, path: segmentPath(end), size: 0 }
    segments.push(segment)
    handle = await open(segment.path, 'a')
  }

  async function flush(): Promise<void> {
    while (pending.length > 0) {
      const batch = pending
      pending = []
      try {
        const current = segments.at(-1)!
        const bytes = batch.reduce((n, p) => n + p.data.length, 0)
        if (current.size > 0 && current.size + bytes > config.segment_bytes) await roll()
        const segment = segments.at(-1)!
        await handle!.writev(batch.map((p) => p.data))
        const ends = batch.map((p) => {
          index.push({ offset: end, end: end + p.data.length, count: p.count })
          return (end += p.data.length)
        })
        segment.size += bytes
        if (config.durability === 'fsync') await handle!.datasync()
        else dirty = true
        batch.forEach((p, i) => p.resolve(ends[i]!))
        events.emit('append')
      } catch (err) {
        for (const p of batch) p.reject(err as Error)
      }
    }
  }

  function kick(): void {
    // An append can land after the loop saw an empty queue but before this
    // promise settled: look again, or it would wait for the next append.
    flushing ??= flush().finally(() => {
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
        // Sealed segments were synced before the next one started; only the
        // last can hold a torn write, so only it pays for checksums here.
        segment.size = await scan(segment, last)
        const { size } = await stat(segment.path)
        if (size > segment.size) {
          if (!last) throw new WalCorruptionError(`wal segment ${segment.path} is damaged at byte ${segment.size} of ${size}`)
          logger.warn({ segment: segment.path, cut_bytes: size - segment.size }, 'wal: cutting a torn or corrupt tail left by a crash')
          const fh = await open(segment.path, 'r+')
          await fh.truncate(segment.size)
          await fh.datasync()
          await fh.close()
        }
      }
      end = segments.length ? segments.at(-1)!.base + segments.at(-1)!.size : 0
      if (segments.length === 0) await roll()
      else handle = await open(segments.at(-1)!.path, 'a')
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
      const payload = Buffer.from(JSON.stringify(activities))
      const data = Buffer.allocUnsafe(HEADER + payload.length)
      data.writeUInt32LE(payload.length, 0)
      data.writeUInt32LE(crc32(payload), 4)
      data.writeUInt32LE(activities.length, 8)
      payload.copy(data, HEADER)
      return new Promise<number>((resolve, reject) => {
        pending.push({ data, count: activities.length, resolve, reject })
        kick()
      })
    },

    countFrom(offset) {
      let n = 0
      for (let i = locate(offset); i < index.length; i++) n += index[i]!.count
      return n
    },

    async read(offset, maxActivities, until = Infinity) {
      const first = locate(offset)
      const refs: RecordRef[] = []
      let count = 0
      for (let i = first; i < index.length && index[i]!.end <= until; i++) {
        const ref = index[i]!
        if (count >= maxActivities) break
        refs.push(ref)
        count += ref.count
      }
      const activities: Activity[] = []
      // One read per segment spanned, then walk the records in memory.
      for (let i = 0; i < refs.length; ) {
        const segment = segments.findLast((s) => s.base <= refs[i]!.offset)!
        let j = i
        while (j + 1 < refs.length && refs[j + 1]!.offset < segment.base + segment.size) j++
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
          const payload = buf.subarray(at + HEADER, at + HEADER + length)
          if (crc32(payload) !== buf.readUInt32LE(at + 4)) throw new WalCorruptionError(`wal record at offset ${refs[k]!.offset} fails its checksum`)
          for (const a of JSON.parse(payload.toString('utf8')) as Activity[]) activities.push(a)
        }
        i = j + 1
      }
      return { activities, count, next: refs.at(-1)?.end ?? offset }
    },

    async cursor(name) {
      let cursor: Cursor = { committed: segments[0]?.base ?? 0 }
      try {
        cursor = JSON.parse(await readFile(cursorPath(name), 'utf8')) as Cursor
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
      cursors.set(name, cursor)
      return cursor
    },

    async saveCursor(name, cursor) {
      // Write, sync, rename: a crash leaves the old cursor or the new one,
      // never half of one.
      const tmp = `${cursorPath(name)}.tmp`
      await writeFile(tmp, JSON.stringify(cursor), { flush: config.durability !== 'none' })
      await rename(tmp, cursorPath(name))
      cursors.set(name, cursor)
      await removePassed()
    },

    retainedBytes() {
      return end - oldestNeeded()
    },

    async close() {
      if (closed) return
      closed = true
      clearInterval(syncTimer)
      await flushing
      if (handle) {
        if (config.durability !== 'none') await handle.datasync()
        await handle.close()
        handle = undefined
      }
    },
  }
}
