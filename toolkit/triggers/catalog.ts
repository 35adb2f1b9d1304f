/**
 * What a database says about its triggers, read from its catalog
 * (pg_trigger, pg_proc): the same query on the PostgreSQL server and on
 * PGlite. Internal triggers (a foreign key's) are left out; a partitioned
 * table's trigger is read once, on the parent (its partitions' clones have a
 * tgparentid).
 */
import type pg from 'pg'

export type Timing = 'BEFORE' | 'AFTER' | 'INSTEAD OF'
export type TriggerEvent = 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE'

export interface CatalogTrigger {
  schema: string
  table: string
  name: string
  /** schema.name of the trigger's function. */
  function: string
  functionOid: number
  timing: Timing
  events: TriggerEvent[]
  level: 'ROW' | 'STATEMENT'
  when: string | null
  /** pg_trigger.tgenabled: O (on), D (disabled), R (replica only), A (always). */
  enabled: 'O' | 'D' | 'R' | 'A'
  constraint: boolean
  definition: string
}

export interface CatalogFunction {
  oid: number
  name: string
  schema: string
  language: string
  body: string
}

/** schema.table.name: how the commands name one trigger, in files and messages. */
export const triggerKey = (t: { schema: string; table: string; name: string }) => `${t.schema}.${t.table}.${t.name}`

// tgtype's bits, from PostgreSQL's pg_trigger.h.
const ROW = 1
const BEFORE = 2
const INSERT = 4
const DELETE = 8
const UPDATE = 16
const TRUNCATE = 32
const INSTEAD = 64

export function decodeType(tgtype: number): Pick<CatalogTrigger, 'timing' | 'events' | 'level'> {
  const events: TriggerEvent[] = []
  if (tgtype & INSERT) events.push('INSERT')
  if (tgtype & UPDATE) events.push('UPDATE')
  if (tgtype & DELETE) events.push('DELETE')
  if (tgtype & TRUNCATE) events.push('TRUNCATE')
  return { timing: tgtype & INSTEAD ? 'INSTEAD OF' : tgtype & BEFORE ? 'BEFORE' : 'AFTER', events, level: tgtype & ROW ? 'ROW' : 'STATEMENT' }
}

const USER_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`

/**
 * The WHEN condition as pg_get_triggerdef prints it. (pg_get_expr cannot
 * print a condition that names both OLD and NEW: "more than one relation".)
 */
export function whenClause(definition: string): string | null {
  return / WHEN \((.*)\) EXECUTE (?:FUNCTION|PROCEDURE) /.exec(definition)?.[1] ?? null
}

/**
 * actline's own trigger functions are named actline_* (audit_log's
 * append-only guard, change-data capture's session context): triggers of
 * the pipeline, not the application's, so the toolkit never lists, backs up
 * or proposes them.
 */
const ACTLINE_FUNCTIONS = 'actline\\_%'

export async function readTriggers(client: pg.ClientBase, schemas: readonly string[] = []): Promise<CatalogTrigger[]> {
  const { rows } = await client.query(
    `SELECT n.nspname AS schema, c.relname AS "table", t.tgname AS name,
       fn.nspname || '.' || p.proname AS function, p.oid::int AS function_oid, t.tgtype::int AS tgtype,
       t.tgenabled AS enabled, t.tgconstraint <> 0 AS is_constraint,
       pg_get_triggerdef(t.oid) AS definition
     FROM pg_trigger t
     JOIN pg_class c ON c.oid = t.tgrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_proc p ON p.oid = t.tgfoid
     JOIN pg_namespace fn ON fn.oid = p.pronamespace
     WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND ${USER_SCHEMA}
       AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]))
       AND p.proname NOT LIKE '${ACTLINE_FUNCTIONS}'
     ORDER BY n.nspname, c.relname, t.tgname`,
    [schemas],
  )
  return rows.map((r) => ({
    schema: r.schema,
    table: r.table,
    name: r.name,
    function: r.function,
    functionOid: r.function_oid,
    ...decodeType(r.tgtype),
    when: whenClause(r.definition),
    enabled: r.enabled,
    constraint: r.is_constraint,
    definition: r.definition,
  }))
}

/** Every function of the user's schemas: a trigger's own, and the helpers it may call. */
export async function readFunctions(client: pg.ClientBase): Promise<Map<number, CatalogFunction>> {
  const { rows } = await client.query(
    `SELECT p.oid::int AS oid, p.proname AS name, n.nspname AS schema, l.lanname AS language, p.prosrc AS body
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
     WHERE ${USER_SCHEMA}`,
  )
  return new Map(rows.map((r) => [r.oid, r as CatalogFunction]))
}
