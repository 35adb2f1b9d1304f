/**
 * The stored activity row: its fields, in order, once. The exporters'
 * column lists and row encoders, the query API's SELECT lists and row type,
 * and the CSV columns are all made from this list; the DDL in the
 * migrations stays literal SQL (a migration is history: it must not change
 * when this list does), and test/schemas/activity-row.test.ts fails when a
 * table and this list disagree.
 *
 * A field's kind says how each store holds it; an optional field is absent
 * on the Activity and empty (ClickHouse) or NULL (PostgreSQL, the API) in a row.
 */
export type FieldKind =
  /** A UUID. */
  | 'uuid'
  /** Epoch milliseconds on the Activity; a DateTime64(3) / timestamptz in the stores. */
  | 'time'
  /** Text every activity has. */
  | 'text'
  /** Text an activity may leave out. */
  | 'optional-text'
  /** A number an activity may leave out. */
  | 'optional-number'
  /** An object or a string, as sent; may be left out. */
  | 'json'
  /** An IPv4 or IPv6 address; may be left out. */
  | 'ip'
  /** String keys to string values; empty when none were sent. */
  | 'map'

export interface RowField {
  /** The Activity's key (activity.ts checks that each one is). */
  readonly name: string
  readonly kind: FieldKind
  /** Its column in PostgreSQL's audit_log when not `name` (`timestamp` is a type name there). */
  readonly postgres?: string
}

export const ACTIVITY_ROW = [
  { name: 'id', kind: 'uuid' },
  { name: 'timestamp', kind: 'time', postgres: 'occurred_at' },
  { name: 'received_at', kind: 'time' },
  { name: 'source', kind: 'text' },
  { name: 'action', kind: 'text' },
  { name: 'category', kind: 'text' },
  { name: 'severity', kind: 'text' },
  { name: 'status', kind: 'text' },
  { name: 'entity_type', kind: 'optional-text' },
  { name: 'entity_id', kind: 'optional-text' },
  { name: 'actor_id', kind: 'optional-text' },
  { name: 'tenant_id', kind: 'optional-text' },
  { name: 'service', kind: 'optional-text' },
  { name: 'trace_id', kind: 'optional-text' },
  { name: 'span_id', kind: 'optional-text' },
  { name: 'correlation_id', kind: 'optional-text' },
  { name: 'duration_ms', kind: 'optional-number' },
  { name: 'details', kind: 'json' },
  { name: 'ip', kind: 'ip' },
  { name: 'user_agent', kind: 'optional-text' },
  { name: 'attributes', kind: 'map' },
] as const satisfies readonly RowField[]

export type RowFieldName = (typeof ACTIVITY_ROW)[number]['name']

/** The fields' names in row order: ClickHouse's columns, the API's and the CSV's. */
export const ROW_COLUMNS: readonly RowFieldName[] = ACTIVITY_ROW.map((f) => f.name)

/** The fields a client may send: every one but received_at, which the collector sets. */
export const INPUT_FIELDS = ROW_COLUMNS.filter((name): name is Exclude<RowFieldName, 'received_at'> => name !== 'received_at')

/** A field's column in PostgreSQL's audit_log. */
export function postgresColumn(field: RowField): string {
  return field.postgres ?? field.name
}

/**
 * How a store writes each kind of field: a JavaScript expression over the
 * field's value (`v` is spelled as given, e.g. `a.actor_id`), which may call
 * the helpers passed beside it.
 */
export type FieldEncoding = Record<FieldKind, (value: string) => string>

/** Every field written as it is on the Activity; a store overrides the kinds it writes otherwise. */
export const AS_IS: FieldEncoding = {
  uuid: (v) => v,
  time: (v) => v,
  text: (v) => v,
  'optional-text': (v) => v,
  'optional-number': (v) => v,
  json: (v) => v,
  ip: (v) => v,
  map: (v) => v,
}

/**
 * A row encoder made from the field list, compiled once into the literal
 * function one would write by hand (as fastify and fast-json-stringify
 * compile serializers from a schema): a loop over the fields, reading each by
 * a computed key, cost 37% more per row on the export path (measured in
 * BENCHMARKS.md, "Row encoders"). Names come from ACTIVITY_ROW, checked to be
 * plain identifiers, never from input.
 */
export function compileRowEncoder<Row>(
  shape: 'array' | 'object',
  encoding: FieldEncoding,
  helpers: Record<string, (...args: never[]) => unknown> = {},
  key: (field: RowField) => string = (f) => f.name,
): (a: object) => Row {
  const parts = ACTIVITY_ROW.map((f: RowField) => {
    if (!/^[a-z_]+$/.test(f.name) || !/^[a-z_]+$/.test(key(f))) throw new Error(`not a plain field name: ${f.name}`)
    const value = encoding[f.kind](`a.${f.name}`)
    return shape === 'array' ? value : `${key(f)}: ${value}`
  })
  const body = shape === 'array' ? `return [${parts.join(', ')}]` : `return { ${parts.join(', ')} }`
  const names = Object.keys(helpers)
  return new Function(...names, `return function encodeRow(a) { ${body} }`)(...Object.values(helpers)) as (a: object) => Row
}
