/**
 * Each exporter's cursor into the write-ahead log, in a file of its own
 * that never needs a new disk block once created: two 512-byte slots,
 * written in turn, in place, each with a sequence number and a CRC-32.
 * Reading takes the valid slot with the highest sequence, so a crash
 * mid-write leaves the previous cursor, never half of one.
 *
 * Why not write-sync-rename (what it replaced): a rename needs a new file,
 * and a new file needs free space. On a full disk the cursors could not be
 * saved, so no exporter advanced, so no segment was freed, so the disk
 * stayed full: ingest refused for good. Overwriting blocks the file already
 * owns needs no space (on ext4, xfs and tmpfs; a copy-on-write filesystem
 * such as btrfs or ZFS allocates anyway, docs/architecture.md says so).
 * Slots are sector-sized and sector-aligned, so a torn write damages one.
 */
import { existsSync } from 'node:fs'
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'

export interface Cursor {
  /** Everything before it is in the store. */
  committed: number
  /** A range handed to the store and not yet confirmed; replayed as-is after a crash. */
  inflight?: { start: number; end: number }
}

const SLOT = 512
const MAGIC = 0x41434c31 // "ACL1"
const HEADER = 14 // magic u32, sequence u32, length u16, crc u32

export interface CursorLedger {
  read(): Promise<Cursor | undefined>
  write(cursor: Cursor): Promise<void>
  close(): Promise<void>
}

export function ledgerPath(dir: string, name: string): string {
  return join(dir, `cursor-${name}.ledger`)
}

/** The cursor a ledger file holds, for tools and tests that look from outside. */
export async function readLedgerFile(dir: string, name: string): Promise<Cursor | undefined> {
  return best(await readFile(ledgerPath(dir, name)).catch(() => Buffer.alloc(0)))?.cursor
}

function decodeSlot(buf: Buffer): { seq: number; cursor: Cursor } | undefined {
  if (buf.length < HEADER || buf.readUInt32LE(0) !== MAGIC) return undefined
  const length = buf.readUInt16LE(8)
  if (HEADER + length > buf.length) return undefined
  const payload = buf.subarray(HEADER, HEADER + length)
  if (crc32(payload) !== buf.readUInt32LE(10)) return undefined
  try {
    return { seq: buf.readUInt32LE(4), cursor: JSON.parse(payload.toString('utf8')) as Cursor }
  } catch {
    return undefined
  }
}

function best(file: Buffer): { seq: number; cursor: Cursor } | undefined {
  const a = decodeSlot(file.subarray(0, SLOT))
  const b = decodeSlot(file.subarray(SLOT, 2 * SLOT))
  if (!a || !b) return a ?? b
  // Sequence numbers wrap at 2^32: the newer is the one fewer than 2^31 ahead.
  return ((b.seq - a.seq) >>> 0) < 0x80000000 ? b : a
}

/**
 * Open (creating it, fully allocated and synced) the ledger of one
 * exporter. A cursor from the JSON file earlier versions wrote is carried
 * over once.
 */
export async function openCursorLedger(dir: string, name: string, sync: boolean): Promise<CursorLedger> {
  const path = ledgerPath(dir, name)
  const legacy = join(dir, `cursor-${name}.json`)
  let seq = 0
  let initial: Cursor | undefined
  if (!existsSync(path)) {
    initial = await readFile(legacy, 'utf8').then((t) => JSON.parse(t) as Cursor, () => undefined)
    const fh = await open(`${path}.tmp`, 'w')
    try {
      await fh.write(Buffer.alloc(2 * SLOT), 0, 2 * SLOT, 0)
      await fh.datasync()
    } finally {
      await fh.close()
    }
    await rename(`${path}.tmp`, path)
  }
  const handle: FileHandle = await open(path, 'r+')
  // Positional reads: FileHandle.readFile reads from the file position on.
  const slots = async () => {
    const buf = Buffer.alloc(2 * SLOT)
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0)
    return buf.subarray(0, bytesRead)
  }
  const found = best(await slots())
  if (found) seq = found.seq

  const ledger: CursorLedger = {
    async read() {
      return best(await slots())?.cursor
    },
    async write(cursor) {
      const payload = Buffer.from(JSON.stringify(cursor))
      if (HEADER + payload.length > SLOT) throw new Error(`cursor of ${name} does not fit a ledger slot (${payload.length} bytes)`)
      seq = (seq + 1) >>> 0
      const slot = Buffer.alloc(SLOT)
      slot.writeUInt32LE(MAGIC, 0)
      slot.writeUInt32LE(seq, 4)
      slot.writeUInt16LE(payload.length, 8)
      slot.writeUInt32LE(crc32(payload), 10)
      payload.copy(slot, HEADER)
      await handle.write(slot, 0, SLOT, (seq % 2) * SLOT)
      if (sync) await handle.datasync()
    },
    close: () => handle.close(),
  }
  if (initial) {
    await ledger.write(initial)
    await rm(legacy, { force: true })
  }
  return ledger
}
