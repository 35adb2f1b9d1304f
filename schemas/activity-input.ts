/**
 * The event contract's input shape and limits as plain TypeScript, with no
 * imports beyond the vocabulary: the app-side SDK (@actline/instrumentation)
 * builds activities against it without carrying zod. The collector's zod
 * schema (activity.ts) is checked against this type when compiling, so the
 * two cannot drift.
 */
import type { CATEGORIES, SEVERITIES, SOURCES, STATUSES } from './vocabulary.ts'
import { MAX_DEPTH } from './storable.ts'

export type Source = (typeof SOURCES)[number]
export type Severity = (typeof SEVERITIES)[number]
export type Status = (typeof STATUSES)[number]
export type Category = (typeof CATEGORIES)[number]

export const LIMITS = {
  /** Characters in an identifier-like field (actor_id, entity_id, ...). */
  shortText: 256,
  /** Characters in user_agent. */
  userAgent: 1024,
  /** Bytes of details once serialized: details is context, not a blob store. */
  details: 64 * 1024,
  /** Entries in attributes, and characters in one attribute value. */
  attributes: 128,
  attributeValue: 4096,
  /** Accepted clock skew: a timestamp further ahead than this is rejected. */
  futureSkewMs: 24 * 60 * 60 * 1000,
  /** Earliest accepted timestamp; older is almost surely a unit bug (seconds sent as ms). */
  earliest: Date.UTC(2000, 0, 1),
  /**
   * Characters of one activity's JSON text, every field and unknown field
   * counted: what one event may cost each store and the log. Attributes
   * alone could otherwise reach 128 x 4 KiB.
   */
  activity: 256 * 1024,
  /** Nesting of objects and arrays inside one activity. */
  depth: MAX_DEPTH,
} as const

/** What a client may send (docs/event-contract.md). Only `action` and `source` are required. */
export interface ActivityInputType {
  id?: string
  /** RFC 3339 with offset, or epoch milliseconds. */
  timestamp?: string | number
  source: Source
  action: string
  category?: Category
  severity?: Severity
  status?: Status
  entity_type?: string
  entity_id?: string
  actor_id?: string
  tenant_id?: string
  service?: string
  trace_id?: string
  span_id?: string
  correlation_id?: string
  duration_ms?: number
  details?: string | Record<string, unknown>
  ip?: string
  user_agent?: string
  attributes?: Record<string, string | number | boolean>
}
