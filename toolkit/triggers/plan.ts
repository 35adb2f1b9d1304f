/**
 * `actline triggers plan` and `drop`: the removable triggers in phases, as
 * teams plan the move — (1) redundant ones, a second trigger of the same
 * kind on the same table and event; (2) audit and activity triggers of tables
 * the pipeline already records with parity (`--parity`, the tables a dual run
 * found at 100%); (3) the rest — each with the checksum of its definitions,
 * so `drop` refuses a trigger that changed since, and one no backup covers.
 * A plan file is data: drop reads each trigger's kind and function again
 * from the live catalog and goes by those.
 */
import type pg from 'pg'
import { BACKUP_TABLE, readDefinitions } from './backup.ts'
import type { Kind } from './classify.ts'
import { scan, type ScannedTrigger } from './scan.ts'
import { inTransaction, integrity, parseToolkitFile, quoteIdent } from './sql.ts'
import { triggerKey as key } from './catalog.ts'

export interface PlannedTrigger {
  schema: string
  table: string
  name: string
  function_signature: string
  kind: Kind
  events: string[]
  checksum: string
  why: string
}

export interface Plan {
  format: 'actline-trigger-plan'
  /** 2 carries `integrity` (sql.ts); a plan of version 1 is made again, not trusted. */
  version: 2
  made_at: string
  phases: { phase: 1 | 2 | 3; title: string; triggers: PlannedTrigger[] }[]
  integrity?: string
}

export async function makePlan(client: pg.ClientBase, options: { schemas?: readonly string[]; include?: readonly Kind[]; parityTables?: readonly string[] } = {}): Promise<Plan> {
  // One client runs one query at a time (pg 9 refuses overlapping ones): one after the other.
  const scanned = await scan(client, options)
  const defs = await readDefinitions(client, options.schemas)
  const def = new Map(defs.map((d) => [key(d), d]))
  const removable = scanned.triggers.filter((t) => t.remove && t.enabled)
  const parity = new Set(options.parityTables ?? [])
  const planned = (t: ScannedTrigger, why: string): PlannedTrigger => ({
    schema: t.schema,
    table: t.table,
    name: t.name,
    function_signature: def.get(key(t))!.function_signature,
    kind: t.kind,
    events: t.events,
    checksum: def.get(key(t))!.checksum,
    why,
  })
  const phase1: PlannedTrigger[] = []
  const seen = new Map<string, ScannedTrigger>()
  for (const t of removable) {
    // The first trigger of a kind on a table (by name: the scan's order) keeps
    // each event; a later one covering only events already covered is redundant.
    const slot = (e: string) => `${t.schema}.${t.table}|${t.kind}|${e}`
    const covered = t.events.every((e) => seen.has(slot(e)))
    if (covered && t.events.length > 0) {
      const first = seen.get(slot(t.events[0]!))!
      phase1.push(planned(t, `redundant: ${first.name} already records ${t.kind} on ${t.events.join('|')}`))
      continue
    }
    for (const e of t.events) if (!seen.has(slot(e))) seen.set(slot(e), t)
  }
  const inPhase1 = new Set(phase1.map(key))
  const rest = removable.filter((t) => !inPhase1.has(key(t)))
  const isParity = (t: ScannedTrigger) => (t.kind === 'audit' || t.kind === 'activity') && (parity.has(t.table) || parity.has(`${t.schema}.${t.table}`))
  return seal({
    format: 'actline-trigger-plan',
    version: 2,
    made_at: new Date().toISOString(),
    phases: [
      { phase: 1, title: 'redundant triggers', triggers: phase1 },
      { phase: 2, title: 'audit and activity triggers of tables the pipeline records with parity', triggers: rest.filter(isParity).map((t) => planned(t, `${t.table} at parity in the dual run`)) },
      { phase: 3, title: 'the other removable triggers', triggers: rest.filter((t) => !isParity(t)).map((t) => planned(t, t.reason)) },
    ],
  })
}

const seal = (plan: Plan): Plan => ({ ...plan, integrity: integrity(plan) })

export function parsePlan(text: string, file: string): Plan {
  const p = parseToolkitFile<Plan>(text, file, 'actline-trigger-plan', 'plan', [2])
  if (!Array.isArray(p.phases)) throw new Error(`${file} is not an actline trigger plan: it has no phases`)
  return p
}

export interface DropStep {
  phase: number
  statements: string[]
}

/**
 * The statements of each phase, after checking the database against the
 * plan, which is data and decides nothing by itself: throws, naming them,
 * when a trigger is not one drop may remove now (its function read again
 * from the live catalog: audit or activity, or a kind the operator named
 * with --include), when it or its function changed since the plan, or when
 * no backup in actline_trigger_backup holds it as planned. Names are quoted;
 * a function to drop is named by the catalog, not by the plan.
 */
export async function prepareDrop(
  client: pg.ClientBase,
  plan: Plan,
  phases: readonly number[],
  options: { dropFunctions?: boolean; lockTimeoutMs?: number; include?: readonly Kind[] } = {},
): Promise<DropStep[]> {
  const chosen = plan.phases.filter((p) => phases.includes(p.phase))
  const triggers = chosen.flatMap((p) => p.triggers)
  const now = new Map((await readDefinitions(client)).map((d) => [key(d), d]))
  // The scan's own rule of what may go, with the kinds the operator named: the plan's `kind` is not read.
  const live = new Map((await scan(client, { include: options.include ?? [] })).triggers.map((t) => [key(t), t]))
  const kept = triggers.filter((t) => live.has(key(t)) && !live.get(key(t))!.remove)
  if (kept.length) {
    const why = kept.map((t) => `${key(t)} (${live.get(key(t))!.kind}: ${live.get(key(t))!.reason})`).join(', ')
    throw new Error(`not removable now, whatever the plan says: ${why}; drop removes audit and activity triggers${options.include?.length ? ` and ${options.include.join(', ')}` : ''} only`)
  }
  const changed = triggers.filter((t) => now.has(key(t)) && now.get(key(t))!.checksum !== t.checksum)
  if (changed.length) throw new Error(`changed since the plan was made (make a new plan): ${changed.map(key).join(', ')}`)
  const present = triggers.filter((t) => now.has(key(t)))
  const exists = (await client.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [BACKUP_TABLE])).rows[0].ok as boolean
  const backed = new Set<string>()
  if (exists) {
    const { rows } = await client.query(`SELECT DISTINCT schema_name || '.' || table_name || '.' || trigger_name || '|' || checksum AS k FROM ${BACKUP_TABLE}`)
    for (const r of rows) backed.add(r.k)
  }
  const uncovered = present.filter((t) => !backed.has(`${key(t)}|${t.checksum}`))
  if (uncovered.length) throw new Error(`no backup holds ${uncovered.map(key).join(', ')} as planned: run actline triggers backup first`)
  // A function goes only with its last trigger, and only when asked; it is named as the catalog prints it
  // (regprocedure: quoted, with its argument types), never as the plan says.
  const users = new Map<string, number>()
  if (options.dropFunctions) {
    const { rows } = await client.query(`SELECT p.oid::regprocedure::text AS fn, count(*)::int AS n FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgparentid = 0 AND NOT t.tgisinternal GROUP BY 1`)
    for (const r of rows) users.set(r.fn, r.n)
  }
  const lock = `SET LOCAL lock_timeout = '${Math.max(1, Math.floor(options.lockTimeoutMs ?? 5000))}ms'`
  return chosen.map((p) => {
    const statements = [lock]
    for (const t of p.triggers.filter((t) => now.has(key(t)))) {
      statements.push(`DROP TRIGGER ${quoteIdent(t.name)} ON ${quoteIdent(t.schema)}.${quoteIdent(t.table)}`)
      const fn = now.get(key(t))!.function_signature
      if (options.dropFunctions) {
        const left = (users.get(fn) ?? 1) - 1
        users.set(fn, left)
        if (left === 0) statements.push(`DROP FUNCTION ${fn}`)
      }
    }
    // A trigger already gone (a phase run before) is skipped: drop can be run again.
    return { phase: p.phase, statements: statements.length > 1 ? statements : [] }
  })
}

/** Runs each phase in a transaction of its own; resolves with how many triggers each dropped. */
export async function runDrop(client: pg.ClientBase, steps: readonly DropStep[]): Promise<{ phase: number; dropped: number }[]> {
  const out: { phase: number; dropped: number }[] = []
  for (const step of steps) {
    if (step.statements.length === 0) {
      out.push({ phase: step.phase, dropped: 0 })
      continue
    }
    await inTransaction(client, async () => {
      for (const sql of step.statements) await client.query(sql)
    })
    out.push({ phase: step.phase, dropped: step.statements.filter((s) => s.startsWith('DROP TRIGGER')).length })
  }
  return out
}
