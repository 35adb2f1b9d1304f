/**
 * What exporters share in writing a batch: the token that names it (a
 * retried batch carries the same one, so the store drops the repeat), and
 * the activity as a JSON object with RFC 3339 times.
 */
import { createHash } from 'node:crypto'
import type { Activity } from '../schemas/activity.ts'
import { AS_IS, compileRowEncoder, type RowField } from '../schemas/activity-row.ts'
import { isoTime } from './time-format.ts'

/** A batch's identity: the hash of its ids, in order. */
export function batchToken(batch: readonly Activity[]): string {
  const h = createHash('sha256')
  for (const a of batch) h.update(a.id)
  return h.digest('hex')
}

/**
 * The activity as an object in row order, times in RFC 3339, absent fields
 * left out, under each field's name or the name `key` gives it.
 */
export function isoRowEncoder(key?: (field: RowField) => string): (a: Activity) => Record<string, unknown> {
  return compileRowEncoder('object', { ...AS_IS, time: (v) => `iso(${v})` }, { iso: isoTime }, key)
}
