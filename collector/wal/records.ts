/**
 * The write-ahead log's record format, and reading a segment's bytes back
 * into records: what is data, what is damage, what is a torn tail. Pure
 * functions over buffers; write-ahead-log.ts owns the files.
 *
 * A record is a 12-byte header (payload length, CRC-32 of the payload,
 * activity count; little-endian u32s) and the payload, a JSON array of
 * normalized activities.
 */
import { crc32 } from 'node:zlib'
import type { Activity } from '../../schemas/activity.ts'

export const HEADER = 12

export function encodeRecord(activities: readonly Activity[]): Buffer {
  const payload = Buffer.from(JSON.stringify(activities))
  const data = Buffer.allocUnsafe(HEADER + payload.length)
  data.writeUInt32LE(payload.length, 0)
  data.writeUInt32LE(crc32(payload), 4)
  data.writeUInt32LE(activities.length, 8)
  payload.copy(data, HEADER)
  return data
}

/** The activities of the record at `at` of `buf`, or undefined when it fails its checksum or is not JSON. */
export function decodeRecord(buf: Buffer, at: number): Activity[] | undefined {
  const length = buf.readUInt32LE(at)
  const payload = buf.subarray(at + HEADER, at + HEADER + length)
  if (crc32(payload) !== buf.readUInt32LE(at + 4)) return undefined
  try {
    return JSON.parse(payload.toString('utf8')) as Activity[]
  } catch {
    return undefined
  }
}

/** Length of the payload of a whole, checksummed record at `pos`, or undefined. */
function recordAt(buf: Buffer, pos: number): number | undefined {
  if (pos + HEADER > buf.length) return undefined
  const length = buf.readUInt32LE(pos)
  if (length === 0 || pos + HEADER + length > buf.length) return undefined
  return crc32(buf.subarray(pos + HEADER, pos + HEADER + length)) === buf.readUInt32LE(pos + 4) ? length : undefined
}

/** Following the lengths from `from`, does any whole, checksummed record come? */
function hasRecordAfter(buf: Buffer, from: number): boolean {
  for (let pos = from; pos + HEADER <= buf.length; ) {
    if (recordAt(buf, pos) !== undefined) return true
    const length = buf.readUInt32LE(pos)
    if (length === 0 || pos + HEADER + length > buf.length) return false
    pos += HEADER + length
  }
  return false
}

export interface SegmentScan {
  /** Records by their position in the segment. */
  records: { at: number; length: number; count: number }[]
  /** Damaged byte ranges, to skip and report. */
  damaged: { at: number; length: number; reason: string }[]
  /** Bytes of the segment to keep: shorter than the file when a torn tail is to be cut. */
  keep: number
}

/**
 * Index a segment's bytes. Sealed segments were synced before the next one
 * began: they are walked by their lengths (a record's checksum is checked
 * when it is read), and bytes whose structure breaks are one damaged
 * region. The last segment is checked record by record: a bad record
 * followed by a good one is damage (skipped), a bad record with nothing
 * good after it is a torn write from a crash (cut).
 */
export function scanSegment(buf: Buffer, last: boolean): SegmentScan {
  const out: SegmentScan = { records: [], damaged: [], keep: buf.length }
  let pos = 0
  while (pos + HEADER <= buf.length) {
    const length = buf.readUInt32LE(pos)
    const fits = length > 0 && pos + HEADER + length <= buf.length
    if (fits && (!last || recordAt(buf, pos) !== undefined)) {
      out.records.push({ at: pos, length: HEADER + length, count: buf.readUInt32LE(pos + 8) })
      pos += HEADER + length
      continue
    }
    if (last && fits && hasRecordAfter(buf, pos + HEADER + length)) {
      out.damaged.push({ at: pos, length: HEADER + length, reason: 'record fails its checksum' })
      pos += HEADER + length
      continue
    }
    if (last) {
      out.keep = pos
      return out
    }
    out.damaged.push({ at: pos, length: buf.length - pos, reason: `sealed segment breaks at byte ${pos} of ${buf.length}` })
    return out
  }
  if (pos < buf.length) {
    if (last) out.keep = pos
    else out.damaged.push({ at: pos, length: buf.length - pos, reason: `sealed segment ends in ${buf.length - pos} stray bytes` })
  }
  return out
}
