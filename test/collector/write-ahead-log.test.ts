import { appendFileSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { parseActivity, type Activity } from '../../schemas/activity.ts'
import { createWriteAheadLog, WriteAheadLogConfig, type CorruptRegion } from '../../collector/wal/write-ahead-log.ts'
import { ledgerPath } from '../../collector/wal/cursor-ledger.ts'
import { createLogger } from '../../collector/server/logger.ts'
import { tempDir } from '../helpers/stores.ts'

const logger = createLogger('silent')
const dirs: ReturnType<typeof tempDir>[] = []
afterEach(() => dirs.splice(0).forEach((d) => d.remove()))

function activities(n: number, tag = 'a'): Activity[] {
  return Array.from({ length: n }, (_, i) => {
    const r = parseActivity({ action: `wal.${tag}`, source: 'user', entity_id: `${tag}-${i}` })
    if (!r.ok) throw new Error('bad fixture')
    return r.activity
  })
}

function wal(overrides: Record<string, unknown> = {}, dir = tempDir(), regions: CorruptRegion[] = []) {
  if (!dirs.includes(dir)) dirs.push(dir)
  return {
    dir: dir.path,
    regions,
    log: createWriteAheadLog({ ...WriteAheadLogConfig.parse(overrides), dir: dir.path }, logger, (r) => void regions.push(r)),
    reopen: () => wal(overrides, dir, regions),
  }
}

const segmentFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.wal')).sort()

describe('write-ahead log', () => {
  it('reads back what was appended, in order, after a reopen', async () => {
    const w = wal()
    await w.log.open()
    const a = activities(3, 'x')
    const b = activities(2, 'y')
    const endA = await w.log.append(a)
    await w.log.append(b)
    await w.log.close()

    const again = w.reopen()
    await again.log.open()
    expect(again.log.countFrom(0)).toBe(5)
    const all = await again.log.read(0, 100)
    expect(all.activities.map((x) => x.id)).toEqual([...a, ...b].map((x) => x.id))
    expect(all.activities[0]).toEqual(a[0])
    const second = await again.log.read(endA, 100)
    expect(second.activities.map((x) => x.id)).toEqual(b.map((x) => x.id))
    await again.log.close()
  })

  it('serves the newest records from memory, within its budget, and the rest from the disk', async () => {
    // Records of one size: the budget holds the last two.
    const probe = wal()
    await probe.log.open()
    const size = await probe.log.append(activities(3, 'a'))
    await probe.log.close()
    const w = wal({ memory_tail_bytes: 2 * size })
    await w.log.open()
    const written = ['a', 'b', 'c', 'd'].map((tag) => activities(3, tag))
    for (const batch of written) await w.log.append(batch)
    // The disk's copy of every record is destroyed: what still reads whole came from memory.
    const [segment] = segmentFiles(w.dir)
    writeFileSync(join(w.dir, segment!), Buffer.alloc(statSync(join(w.dir, segment!)).size, 0x5a))
    const read = await w.log.read(0, 100)
    expect(read.activities.map((a) => a.entity_id)).toEqual([...written[2]!, ...written[3]!].map((a) => a.entity_id))
    expect(read.activities[0]).toEqual(written[2]![0])
    expect(w.regions.map((r) => r.reason)).toEqual(['record fails its checksum', 'record fails its checksum'])
    await w.log.close()
  })

  it('keeps nothing in memory by default, and with a budget no record every reader has passed', async () => {
    for (const overrides of [{}, { memory_tail_bytes: 1024 * 1024 }]) {
      const w = wal(overrides)
      await w.log.open()
      await w.log.cursor('x')
      const first = await w.log.append(activities(2, 'a'))
      await w.log.append(activities(2, 'b'))
      await w.log.saveCursor('x', { committed: first })
      const [segment] = segmentFiles(w.dir)
      writeFileSync(join(w.dir, segment!), Buffer.alloc(statSync(join(w.dir, segment!)).size, 0x5a))
      // Off (the default): nothing reads whole. On: only the record the cursor has not passed.
      expect((await w.log.read(0, 100)).activities.map((a) => a.entity_id)).toEqual('memory_tail_bytes' in overrides ? ['b-0', 'b-1'] : [])
      await w.log.close()
    }
  })

  it('reads whole records until the activity limit is reached', async () => {
    const w = wal()
    await w.log.open()
    await w.log.append(activities(4))
    await w.log.append(activities(4))
    await w.log.append(activities(4))
    expect((await w.log.read(0, 5)).count).toBe(8)
    expect((await w.log.read(0, 2)).count).toBe(4)
    expect((await w.log.read(0, 8)).count).toBe(8)
    expect((await w.log.read(0, 100, w.log.end - 1)).count).toBe(8) // `until` stops before a record that ends past it
    await w.log.close()
  })

  it('shares one fsync among appends that arrive together (group commit)', async () => {
    const w = wal({ durability: 'fsync', commit_delay_ms: 0 })
    await w.log.open()
    const ends = await Promise.all(Array.from({ length: 50 }, (_, i) => w.log.append(activities(1, `g${i}`))))
    expect(new Set(ends).size).toBe(50)
    expect(ends).toEqual([...ends].sort((x, y) => x - y))
    expect(w.log.countFrom(0)).toBe(50)
    // The first goes alone; the 49 that came while it synced share the next sync.
    expect(w.log.health()).toMatchObject({ records: 50, syncs: 2 })
    await w.log.close()
  })

  it('waits commit_delay_ms for others to share a sync only while appends come faster than that', async () => {
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))
    const w = wal({ durability: 'fsync', commit_delay_ms: 30 })
    await w.log.open()
    // Apart by more than the delay: each is synced alone, at once.
    for (let i = 0; i < 3; i++) {
      await w.log.append(activities(1, `slow${i}`))
      await pause(60)
    }
    expect(w.log.health()).toMatchObject({ records: 3, syncs: 3 })
    // Every 5 ms: each sync waits up to 30 ms and takes the appends that came meanwhile.
    const fast: Promise<number>[] = []
    for (let i = 0; i < 40; i++) {
      fast.push(w.log.append(activities(1, `fast${i}`)))
      await pause(5)
    }
    await Promise.all(fast)
    expect(w.log.health().records).toBe(43)
    expect(w.log.health().syncs - 3).toBeLessThan(20)
    const again = w.reopen()
    await w.log.close()
    await again.log.open()
    expect(again.log.countFrom(0)).toBe(43)
    await again.log.close()
  })

  it('syncs with O_DSYNC when asked: each group is one durable write, read back after a reopen', async () => {
    const w = wal({ durability: 'fsync', sync_method: 'o_dsync' })
    await w.log.open()
    const a = activities(3, 'dsync')
    await Promise.all([w.log.append(a.slice(0, 1)), w.log.append(a.slice(1))])
    expect(w.log.health()).toMatchObject({ records: 2, syncs: 2 })
    await w.log.close()
    const again = w.reopen()
    await again.log.open()
    expect((await again.log.read(0, 100)).activities.map((x) => x.id)).toEqual(a.map((x) => x.id))
    await again.log.close()
  })

  it('cuts a torn tail left by a crash mid-write, keeps what precedes it, and appends after it', async () => {
    const w = wal()
    await w.log.open()
    const kept = activities(3, 'kept')
    await w.log.append(kept)
    await w.log.append(activities(3, 'torn'))
    await w.log.close()
    const [file] = segmentFiles(w.dir)
    const path = join(w.dir, file!)
    truncateSync(path, statSync(path).size - 40) // the second record loses its end

    const again = w.reopen()
    await again.log.open()
    expect((await again.log.read(0, 100)).activities.map((x) => x.id)).toEqual(kept.map((x) => x.id))
    const more = activities(2, 'after')
    await again.log.append(more)
    expect((await again.log.read(0, 100)).activities.map((x) => x.entity_id)).toEqual([...kept, ...more].map((x) => x.entity_id))
    await again.log.close()
  })

  it('cuts a tail whose bytes were corrupted, never parsing them as data', async () => {
    const w = wal()
    await w.log.open()
    const kept = activities(2, 'kept')
    await w.log.append(kept)
    const endOfFirst = w.log.end
    await w.log.append(activities(2, 'bad'))
    await w.log.close()
    const path = join(w.dir, segmentFiles(w.dir)[0]!)
    const bytes = readFileSync(path)
    bytes[endOfFirst + 30]! ^= 0xff // inside the second record's payload
    writeFileSync(path, bytes)
    appendFileSync(path, Buffer.from([1, 2, 3])) // and some garbage after it

    const again = w.reopen()
    await again.log.open()
    expect(again.log.end).toBe(endOfFirst)
    expect(statSync(path).size).toBe(endOfFirst)
    expect((await again.log.read(0, 100)).activities.map((x) => x.id)).toEqual(kept.map((x) => x.id))
    await again.log.close()
  })

  it('rolls segments and deletes one only once every cursor has passed it', async () => {
    const w = wal({ segment_bytes: 2048 })
    await w.log.open()
    await w.log.cursor('fast')
    await w.log.cursor('slow')
    for (let i = 0; i < 10; i++) await w.log.append(activities(5, `s${i}`))
    const files = segmentFiles(w.dir)
    expect(files.length).toBeGreaterThan(2)
    await w.log.saveCursor('fast', { committed: w.log.end })
    expect(segmentFiles(w.dir)).toEqual(files) // slow still needs them
    expect(w.log.retainedBytes()).toBe(w.log.end)
    await w.log.saveCursor('slow', { committed: w.log.end })
    expect(segmentFiles(w.dir)).toHaveLength(1)
    expect(w.log.retainedBytes()).toBe(0)
    await w.log.close()
  })

  it('keeps a segment an in-flight range still needs', async () => {
    const w = wal({ segment_bytes: 2048 })
    await w.log.open()
    await w.log.cursor('only')
    for (let i = 0; i < 10; i++) await w.log.append(activities(5, `s${i}`))
    await w.log.saveCursor('only', { committed: w.log.end, inflight: { start: 0, end: w.log.end } })
    expect(w.log.retainedBytes()).toBe(w.log.end)
    expect(segmentFiles(w.dir).length).toBeGreaterThan(2)
    await w.log.close()
  })

  it('persists cursors across a reopen', async () => {
    const w = wal()
    await w.log.open()
    expect(await w.log.cursor('clickhouse')).toEqual({ committed: 0 })
    await w.log.append(activities(2))
    await w.log.saveCursor('clickhouse', { committed: w.log.end, inflight: { start: 0, end: 10 } })
    await w.log.close()
    const again = w.reopen()
    await again.log.open()
    expect(await again.log.cursor('clickhouse')).toEqual({ committed: again.log.end, inflight: { start: 0, end: 10 } })
    await again.log.close()
  })

  it('skips a damaged record in the middle of the last segment, keeping the records after it, and reports it once', async () => {
    const w = wal()
    await w.log.open()
    const first = activities(2, 'first')
    await w.log.append(first)
    const endOfFirst = w.log.end
    await w.log.append(activities(2, 'flipped'))
    const last = activities(2, 'last')
    await w.log.append(last)
    await w.log.close()
    const path = join(w.dir, segmentFiles(w.dir)[0]!)
    const bytes = readFileSync(path)
    bytes[endOfFirst + 40]! ^= 0xff
    writeFileSync(path, bytes)

    const again = w.reopen()
    await again.log.open()
    const ids = (await again.log.read(0, 100)).activities.map((x) => x.id)
    expect(ids).toEqual([...first, ...last].map((x) => x.id))
    expect(again.regions).toHaveLength(1)
    expect(again.regions[0]).toMatchObject({ offset: endOfFirst, reason: 'record fails its checksum' })
    expect(again.log.health().corruptRecords).toBe(1)
    await again.log.close()
  })

  it('skips a record of a sealed segment that fails its checksum when read, instead of retrying it forever', async () => {
    const w = wal({ segment_bytes: 2048 })
    await w.log.open()
    for (let i = 0; i < 10; i++) await w.log.append(activities(5, `s${i}`))
    await w.log.close()
    const sealed = join(w.dir, segmentFiles(w.dir)[0]!)
    const bytes = readFileSync(sealed)
    bytes[20]! ^= 0xff // inside the first record's payload
    writeFileSync(sealed, bytes)

    const again = w.reopen()
    await again.log.open()
    const read = await again.log.read(0, 1000)
    expect(read.activities).toHaveLength(45)
    expect(read.next).toBe(again.log.end)
    await again.log.read(0, 1000)
    expect(again.regions).toHaveLength(1)
    expect(again.regions[0]!.bytes.length).toBeGreaterThan(12)
    await again.log.close()
  })

  it('opens a log whose sealed segment is broken in its structure: the broken part is reported, the rest read', async () => {
    const w = wal({ segment_bytes: 4096 })
    await w.log.open()
    for (let i = 0; i < 10; i++) await w.log.append(activities(5, `s${i}`))
    const total = w.log.countFrom(0)
    await w.log.close()
    const sealed = join(w.dir, segmentFiles(w.dir)[0]!)
    const bytes = readFileSync(sealed)
    const firstLength = bytes.readUInt32LE(0)
    bytes.writeUInt32LE(0x7fffffff, 12 + firstLength) // the second record's length runs past the file
    writeFileSync(sealed, bytes)

    const again = w.reopen()
    await again.log.open()
    const read = await again.log.read(0, 1000)
    expect(read.activities.length).toBeGreaterThan(5)
    expect(read.activities.length).toBeLessThan(total)
    expect(again.regions[0]!.reason).toMatch(/sealed segment breaks at byte/)
    await again.log.close()
  })

  it('keeps the previous cursor when a cursor write was torn, and carries over the JSON cursor of earlier versions', async () => {
    const w = wal()
    writeFileSync(join(w.dir, 'cursor-old.json'), JSON.stringify({ committed: 0, inflight: { start: 0, end: 7 } }))
    await w.log.open()
    expect(await w.log.cursor('old')).toEqual({ committed: 0, inflight: { start: 0, end: 7 } })
    await w.log.append(activities(2))
    await w.log.saveCursor('old', { committed: 1 })
    await w.log.saveCursor('old', { committed: w.log.end })
    await w.log.close()
    expect(readdirSync(w.dir)).not.toContain('cursor-old.json')
    // Tear the newest slot.
    const ledger = readFileSync(ledgerPath(w.dir, 'old'))
    const newest = ledger.readUInt32LE(4) > ledger.readUInt32LE(516) ? 0 : 512
    ledger[newest + 20]! ^= 0xff
    writeFileSync(ledgerPath(w.dir, 'old'), ledger)
    const again = w.reopen()
    await again.log.open()
    expect(await again.log.cursor('old')).toEqual({ committed: 1 })
    await again.log.close()
  })

  it('reads the newest records holding at least a given number of activities (the tail)', async () => {
    const w = wal({ segment_bytes: 4096 })
    await w.log.open()
    for (let i = 0; i < 6; i++) await w.log.append(activities(5, `t${i}`))
    expect((await w.log.tail(7)).map((a) => a.action)).toEqual([...Array(5).fill('wal.t4'), ...Array(5).fill('wal.t5')])
    expect(await w.log.tail(1000)).toHaveLength(30)
    await w.log.close()
  })
})
