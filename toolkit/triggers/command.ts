/**
 * What every `actline triggers` command shares: its options, its way of
 * opening the database, and its one-line errors. A command is a file in
 * commands/; cli.ts lists them.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { redactUrl } from '../../lib/redact.ts'
import { KINDS, type Kind } from './classify.ts'
import { OPTIONALLY_REMOVABLE } from './scan.ts'
import { pgClient } from '../../lib/pg-client.ts'

/** A mistake of the user's, told as one line saying what to do. */
export class ToolkitError extends Error {}

/** Every option of every command: parsed once, each command reads its own. */
export const OPTIONS = {
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
  'key-column': { type: 'string' },
  'old-column': { type: 'string' },
  'new-column': { type: 'string' },
  'actor-column': { type: 'string' },
  threshold: { type: 'string' },
  collector: { type: 'string' },
  'api-key': { type: 'string' },
  checkpoint: { type: 'string' },
  batch: { type: 'string' },
  restart: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

export const parseOptions = (args: string[]) => parseArgs({ args, allowPositionals: true, options: OPTIONS })
export type Options = ReturnType<typeof parseOptions>['values']

/** Opens a database by URL; the command's connections are closed for it when it ends. */
export type Open = (url: string | undefined) => Promise<pg.Client>

export interface Command {
  name: string
  /** The usage lines: the synopsis, then what it does. */
  usage: string
  example: string
  /** The exit code: 0 done, 1 a failure or a finding (compare below threshold). */
  run(o: Options, open: Open): Promise<number>
}

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
  const client = pgClient({ connectionString: url, connectionTimeoutMillis: 10_000, application_name: 'actline triggers' })
  try {
    await client.connect()
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { code?: string }
    const why =
      e.code === 'ECONNREFUSED' ? 'nothing listens there: is PostgreSQL running, and is the port right?'
      : e.code === 'ENOTFOUND' ? 'the host name does not resolve'
      : e.code === '28P01' || e.code === '28000' ? 'authentication failed: check the user and password'
      : e.code === '3D000' ? 'that database does not exist'
      : e.message
    throw new ToolkitError(`cannot connect to ${redactUrl(url)}: ${why}`)
  }
  return client
}

/** A file another command wrote, parsed by `parse`; either failure is one line. */
export function readToolkitFile<T>(file: string, parse: (text: string, file: string) => T): T {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ToolkitError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  return toolkitErrors(() => parse(text, file))
}

/** Runs `work`, turning the plain errors of the toolkit's modules (not the database's, which carry a code) into one-line ones. */
export function toolkitErrors<T>(work: () => T): T {
  try {
    return work()
  } catch (err) {
    throw asToolkitError(err)
  }
}

export function asToolkitError(err: unknown): unknown {
  return err instanceof Error && !(err as { code?: string }).code && !(err instanceof ToolkitError) ? new ToolkitError(err.message) : err
}

/** An ISO time, epoch milliseconds, or now-<n><s|m|h|d>. */
export function instant(text: string | undefined, option: string): Date {
  if (!text) throw new ToolkitError(`${option} is required: a time, e.g. 2026-11-24T00:00:00Z or now-7d`)
  const rel = /^now-(\d+)([smhd])$/.exec(text)
  const ms = rel ? Date.now() - Number(rel[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[rel[2] as 's']! : /^\d{10,16}$/.test(text) ? Number(text) : Date.parse(text)
  if (Number.isNaN(ms)) throw new ToolkitError(`${option} is not a time: expected ISO 8601 (2026-11-24T00:00:00Z), epoch milliseconds or now-7d, got '${text}'`)
  return new Date(ms)
}

export function phaseList(text: string | undefined): (1 | 2 | 3)[] {
  if (text === 'all') return [1, 2, 3]
  if (text === '1' || text === '2' || text === '3') return [Number(text) as 1 | 2 | 3]
  throw new ToolkitError(`--phase takes 1, 2, 3 or all${text === undefined ? '' : `, got '${text}'`}`)
}

export function kinds(text: string | undefined): Kind[] {
  if (!text) return []
  const list = text.split(',').map((s) => s.trim()).filter(Boolean)
  for (const k of list) {
    if (!(OPTIONALLY_REMOVABLE as readonly string[]).includes(k)) {
      throw new ToolkitError(`--include takes ${OPTIONALLY_REMOVABLE.join(', ')} (audit and activity are always proposed; ${KINDS.at(-1)} never), got '${k}'`)
    }
  }
  return list as Kind[]
}

/** The legacy table's columns the user named (--table-column ...), for compare and backfill. */
export function givenColumns<K extends string>(o: Options, keys: readonly K[]): Partial<Record<K, string>> {
  const values = o as Record<string, unknown>
  return Object.fromEntries(keys.flatMap((k) => (typeof values[`${k}-column`] === 'string' ? [[k, values[`${k}-column`]]] : []))) as Partial<Record<K, string>>
}

export const dbUrl = (o: Options) => o.db ?? process.env.ACTLINE_TRIGGERS_DB
