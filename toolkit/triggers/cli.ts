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

const USAGE = `usage:
  actline triggers scan --db URL [--schema S ...] [--include notify,timestamp] [--json]
      every trigger on the user's tables, its kind (audit, activity, notify, timestamp,
      business) read from its function, and whether it can be removed

example:
  actline triggers scan --db postgres://app@127.0.0.1:5432/shop --schema public --json`

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
      options: { db: { type: 'string' }, schema: { type: 'string', multiple: true }, include: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
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
  if (command !== 'scan') {
    console.error(`triggers: unknown command '${command}'\n${USAGE}`)
    return 2
  }
  let client: pg.Client | undefined
  try {
    const include = kinds(values.include as string | undefined)
    client = await connect((values.db as string | undefined) ?? process.env.ACTLINE_TRIGGERS_DB)
    const result = await scan(client, { schemas: (values.schema as string[] | undefined) ?? [], include })
    console.log(values.json ? JSON.stringify(result, null, 2) : formatScan(result))
    return 0
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
  }
}
