/**
 * `actline triggers <command>`: the toolkit for removing a database's audit
 * triggers. Every command takes the database as a URL (`--db`, or
 * ACTLINE_TRIGGERS_DB) and says what went wrong in one line.
 */
import { parseArgs } from 'node:util'
import pg from 'pg'
import { redactUrl } from '../../lib/redact.ts'
import { KINDS, type Kind } from './classify.ts'
import { formatScan, OPTIONALLY_REMOVABLE, scan } from './scan.ts'
import { parseBackup, restore, restoreStatements, select, takeBackup } from './backup.ts'
import { makePlan, parsePlan, prepareDrop, runDrop } from './plan.ts'
import { compare, formatCompare } from './compare.ts'
import { triggerKey } from './catalog.ts'
import { readFileSync, writeFileSync } from 'node:fs'

const USAGE = `usage:
  actline triggers scan --db URL [--schema S ...] [--include notify,timestamp] [--json]
      every trigger on the user's tables, its kind (audit, activity, notify, timestamp,
      business) read from its function, and whether it can be removed
  actline triggers backup --db URL --out FILE [--schema S ...] [--json]
      every trigger's and function's definition, enabled state and comments, into FILE
      and the database's actline_trigger_backup table (the only thing it writes)
  actline triggers restore --db URL --from FILE [--trigger NAME ...] [--yes] [--json]
      recreate them exactly (all, or the named ones: name, table.name or schema.table.name);
      without --yes it prints the SQL it would run and changes nothing

  actline triggers plan --db URL [--out plan.json] [--parity TABLE,...] [--include notify,timestamp] [--json]
      the removable triggers in phases: (1) redundant, (2) audit/activity of tables at parity
      in the dual run (--parity), (3) the rest; each with the checksum of its definitions
  actline triggers drop --db URL --plan plan.json --phase N|all [--drop-functions] [--yes] [--json]
      drop a phase, one transaction per phase (lock_timeout 5 s); refuses a trigger changed
      since the plan or one no backup holds; without --yes it prints the SQL and changes nothing
  actline triggers compare --db URL --legacy-table T --since TIME [--until TIME] [--actline-db URL]
                           [--table-column C] [--operation-column C] [--time-column C] [--id-column C]
                           [--threshold 100] [--json]
      the dual run: legacy audit rows per table and operation against actline's db.* activities
      (audit_log at --actline-db, default --db) in the window; exit 1 below the threshold

examples:
  actline triggers scan --db postgres://app@127.0.0.1:5432/shop --schema public --json
  actline triggers backup --db postgres://app@127.0.0.1:5432/shop --out triggers-backup.json
  actline triggers restore --db postgres://app@127.0.0.1:5432/shop --from triggers-backup.json --trigger orders.orders_audit --yes`

export class ToolkitError extends Error {}

/** A connection, or a one-line reason why not, with what to do. */
export async function connect(url: string | undefined): Promise<pg.Client> {
  if (!url) throw new ToolkitError('--db is required: the database URL, e.g. --db postgres://user@host:5432/dbname (or set ACTLINE_TRIGGERS_DB)')
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ToolkitError(`--db is not a URL: expected postgres://user[:password]@host[:port]/dbname`)
  }
  if (!/^postgres(ql)?:$/.test(parsed.protocol)) throw new ToolkitError(`--db must be a postgres:// URL, got ${parsed.protocol}//...`)
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, application_name: 'actline triggers' })
  try {
    await client.connect()
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { code?: string }
    const where = redactUrl(url)
    const why =
      e.code === 'ECONNREFUSED' ? 'nothing listens there: is PostgreSQL running, and is the port right?'
      : e.code === 'ENOTFOUND' ? 'the host name does not resolve'
      : e.code === '28P01' || e.code === '28000' ? 'authentication failed: check the user and password'
      : e.code === '3D000' ? 'that database does not exist'
      : e.message
    throw new ToolkitError(`cannot connect to ${where}: ${why}`)
  }
  return client
}

/** A file another command wrote, parsed by `parse`; either failure is one line. */
function readFile<T>(file: string, parse: (text: string, file: string) => T): T {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ToolkitError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  try {
    return parse(text, file)
  } catch (err) {
    throw new ToolkitError((err as Error).message)
  }
}

function readPlanFile(file: string | undefined) {
  if (!file) throw new ToolkitError('--plan FILE is required: a plan actline triggers plan --out wrote')
  return readFile(file, parsePlan)
}

/** An ISO time, epoch milliseconds, or now-<n><s|m|h|d>. */
function instant(text: string | undefined, option: string): Date {
  if (!text) throw new ToolkitError(`${option} is required: a time, e.g. 2026-11-24T00:00:00Z or now-7d`)
  const rel = /^now-(\d+)([smhd])$/.exec(text)
  const ms = rel ? Date.now() - Number(rel[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[rel[2] as 's']! : /^\d{10,16}$/.test(text) ? Number(text) : Date.parse(text)
  if (Number.isNaN(ms)) throw new ToolkitError(`${option} is not a time: expected ISO 8601 (2026-11-24T00:00:00Z), epoch milliseconds or now-7d, got '${text}'`)
  return new Date(ms)
}

function phaseList(text: string | undefined): number[] {
  if (text === 'all') return [1, 2, 3]
  if (text === '1' || text === '2' || text === '3') return [Number(text)]
  throw new ToolkitError(`--phase takes 1, 2, 3 or all${text === undefined ? '' : `, got '${text}'`}`)
}

function kinds(text: string | undefined): Kind[] {
  if (!text) return []
  const list = text.split(',').map((s) => s.trim()).filter(Boolean)
  for (const k of list) {
    if (!(OPTIONALLY_REMOVABLE as readonly string[]).includes(k)) {
      throw new ToolkitError(`--include takes ${OPTIONALLY_REMOVABLE.join(', ')} (audit and activity are always proposed; ${KINDS.at(-1)} never), got '${k}'`)
    }
  }
  return list as Kind[]
}

export async function triggersCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        db: { type: 'string' },
        schema: { type: 'string', multiple: true },
        include: { type: 'string' },
        json: { type: 'boolean' },
        out: { type: 'string' },
        from: { type: 'string' },
        trigger: { type: 'string', multiple: true },
        yes: { type: 'boolean' },
        plan: { type: 'string' },
        phase: { type: 'string' },
        parity: { type: 'string' },
        'drop-functions': { type: 'boolean' },
        'legacy-table': { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        'actline-db': { type: 'string' },
        'table-column': { type: 'string' },
        'operation-column': { type: 'string' },
        'time-column': { type: 'string' },
        'id-column': { type: 'string' },
        threshold: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }))
  } catch (err) {
    console.error(`triggers: ${(err as Error).message}\n${USAGE}`)
    return 2
  }
  const [command] = positionals
  if (values.help || !command) {
    console.log(USAGE)
    return values.help ? 0 : 2
  }
  if (!['scan', 'backup', 'restore', 'plan', 'drop', 'compare'].includes(command)) {
    console.error(`triggers: unknown command '${command}'\n${USAGE}`)
    return 2
  }
  let client: pg.Client | undefined
  let second: pg.Client | undefined
  const schemas = (values.schema as string[] | undefined) ?? []
  try {
    const include = kinds(values.include as string | undefined)
    const out = values.out as string | undefined
    const from = values.from as string | undefined
    if (command === 'backup' && !out) throw new ToolkitError('--out FILE is required: where the backup is written (it also goes to the actline_trigger_backup table)')
    if (command === 'restore' && !from) throw new ToolkitError('--from FILE is required: a file actline triggers backup wrote')
    const backupFile = from === undefined ? undefined : readFile(from, parseBackup)
    const planFile = command === 'drop' ? readPlanFile(values.plan as string | undefined) : undefined
    const phases = command === 'drop' ? phaseList(values.phase as string | undefined) : []
    client = await connect((values.db as string | undefined) ?? process.env.ACTLINE_TRIGGERS_DB)
    if (command === 'scan') {
      const result = await scan(client, { schemas, include })
      console.log(values.json ? JSON.stringify(result, null, 2) : formatScan(result))
      return 0
    }
    if (command === 'compare') {
      const legacyTable = values['legacy-table'] as string | undefined
      if (!legacyTable) throw new ToolkitError('--legacy-table is required: the table the audit triggers write (schema.table or table)')
      const since = instant(values.since as string | undefined, '--since')
      const until = values.until === undefined ? new Date() : instant(values.until as string, '--until')
      const threshold = values.threshold === undefined ? 100 : Number(values.threshold)
      if (!(threshold >= 0 && threshold <= 100)) throw new ToolkitError(`--threshold is a percentage from 0 to 100, got '${String(values.threshold)}'`)
      const actlineDb = values['actline-db'] as string | undefined
      second = actlineDb ? await connect(actlineDb) : undefined
      let result
      try {
        result = await compare(client, second ?? client, {
          legacyTable,
          since,
          until,
          threshold,
          columns: Object.fromEntries(
            (['table', 'operation', 'time', 'id'] as const).flatMap((k) => (typeof values[`${k}-column`] === 'string' ? [[k, values[`${k}-column`]]] : [])),
          ),
        })
      } catch (err) {
        if ((err as { code?: string }).code === '42P01') throw new ToolkitError(`no audit_log table at ${redactUrl(actlineDb ?? String(values.db))}: pass --actline-db, the PostgreSQL actline exports to`)
        if ((err as { code?: string }).code) throw err
        throw new ToolkitError((err as Error).message)
      }
      console.log(values.json ? JSON.stringify(result, null, 2) : formatCompare(result, threshold))
      return result.below_threshold.length ? 1 : 0
    }
    if (command === 'plan') {
      const plan = await makePlan(client, { schemas, include, parityTables: String(values.parity ?? '').split(',').map((t) => t.trim()).filter(Boolean) })
      if (out) writeFileSync(out, `${JSON.stringify(plan, null, 2)}\n`)
      if (values.json) console.log(JSON.stringify(plan, null, 2))
      else {
        for (const p of plan.phases) {
          console.log(`phase ${p.phase}: ${p.title} (${p.triggers.length})`)
          for (const t of p.triggers) console.log(`  ${triggerKey(t)}  ${t.kind}  ${t.why}`)
        }
        if (out) console.log(`plan written to ${out}`)
      }
      return 0
    }
    if (command === 'drop') {
      let steps
      try {
        steps = await prepareDrop(client, planFile!, phases, { dropFunctions: values['drop-functions'] === true })
      } catch (err) {
        if ((err as { code?: string }).code) throw err
        throw new ToolkitError((err as Error).message)
      }
      if (!values.yes) {
        const sql = steps.flatMap((s) => (s.statements.length ? [`-- phase ${s.phase}`, 'BEGIN;', ...s.statements.map((q) => `${q};`), 'COMMIT;'] : [`-- phase ${s.phase}: nothing left to drop`]))
        console.log(values.json ? JSON.stringify({ dry_run: true, steps }, null, 2) : `-- would run (nothing changed; add --yes to run this):\n${sql.join('\n')}`)
        return 0
      }
      const done = await runDrop(client, steps)
      console.log(values.json ? JSON.stringify({ phases: done }) : done.map((d) => `phase ${d.phase}: dropped ${d.dropped} triggers`).join('\n'))
      return 0
    }
    if (command === 'backup') {
      const backup = await takeBackup(client, schemas)
      writeFileSync(out!, `${JSON.stringify(backup, null, 2)}\n`)
      console.log(values.json ? JSON.stringify({ file: out, taken_at: backup.taken_at, triggers: backup.triggers.length }) : `backed up ${backup.triggers.length} triggers to ${out} and ${'actline_trigger_backup'} (taken_at ${backup.taken_at})`)
      return 0
    }
    const chosen = (() => {
      try {
        return select(backupFile!, (values.trigger as string[] | undefined) ?? [])
      } catch (err) {
        throw new ToolkitError((err as Error).message)
      }
    })()
    if (!values.yes) {
      const sql = chosen.flatMap((t) => restoreStatements(t).map((q) => `${q};`))
      console.log(values.json ? JSON.stringify({ dry_run: true, triggers: chosen.map(triggerKey), sql }, null, 2) : `-- would restore ${chosen.length} triggers (nothing changed; add --yes to run this):\n${sql.join('\n')}`)
      return 0
    }
    const differ = await restore(client, chosen)
    if (values.json) console.log(JSON.stringify({ restored: chosen.length, differ }))
    else console.log(differ.length ? `restored ${chosen.length} triggers, but ${differ.length} differ from the backup: ${differ.join(', ')}` : `restored ${chosen.length} triggers; each is as backed up (definition, function, state, comments)`)
    return differ.length ? 1 : 0
  } catch (err) {
    if (err instanceof ToolkitError) {
      console.error(`triggers ${command}: ${err.message}`)
      return 1
    }
    const e = err as { code?: string; message: string }
    console.error(`triggers ${command}: ${e.code === '42501' ? `permission denied (${e.message}): the user needs to read pg_trigger and pg_proc` : e.message}`)
    return 1
  } finally {
    await client?.end().catch(() => {})
    await second?.end().catch(() => {})
  }
}
