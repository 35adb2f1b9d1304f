/**
 * The SQL a toolkit file carries, read with PostgreSQL's own parser
 * (libpg-query: the server's parser compiled to WebAssembly), never by
 * splitting text. A backup holds each function's and trigger's definition as
 * `pg_get_functiondef` and `pg_get_triggerdef` printed them; restore runs a
 * definition only when the parser finds in it exactly one statement of the
 * kind it should be, naming what the backup says it names. Anything else in
 * the file (a signature, a comment, a name) is data: quoted, or looked up
 * in the catalog.
 */
import { parse } from 'libpg-query'

type Node = Record<string, unknown>

/** A name as the parser gives it: `[schema, name]` or `[name]`. */
export interface QualifiedName {
  schema: string | undefined
  name: string
}

async function theStatement(sql: string, what: string): Promise<Node> {
  let tree: { stmts?: { stmt: Node }[] }
  try {
    tree = await parse(sql)
  } catch (err) {
    throw new Error(`${what} is not SQL PostgreSQL can parse (${(err as Error).message})`)
  }
  const statements = tree.stmts ?? []
  if (statements.length !== 1) throw new Error(`${what} holds ${statements.length} statements, where a backup has exactly one`)
  return statements[0]!.stmt
}

function nameOf(list: unknown): QualifiedName {
  const parts = (Array.isArray(list) ? list : []).map((p) => (p as { String?: { sval?: string } }).String?.sval)
  if (parts.length === 0 || parts.length > 2 || parts.some((p) => typeof p !== 'string')) throw new Error(`an unexpected name: ${JSON.stringify(list)}`)
  return parts.length === 2 ? { schema: parts[0]!, name: parts[1]! } : { schema: undefined, name: parts[0]! }
}

/** The function a definition creates; throws unless it is one CREATE [OR REPLACE] FUNCTION. */
export async function createdFunction(sql: string, what: string): Promise<QualifiedName> {
  const stmt = await theStatement(sql, what)
  const create = stmt.CreateFunctionStmt as Node | undefined
  if (!create || create.is_procedure === true) throw new Error(`${what} is a ${Object.keys(stmt)[0]}, not a CREATE FUNCTION`)
  return nameOf(create.funcname)
}

/** Throws unless `sql` is one CREATE TRIGGER of this name, on this table, calling this function. */
export async function checkCreatedTrigger(sql: string, what: string, expected: { schema: string; table: string; name: string; fn: QualifiedName }): Promise<void> {
  const stmt = await theStatement(sql, what)
  const create = stmt.CreateTrigStmt as Node | undefined
  if (!create) throw new Error(`${what} is a ${Object.keys(stmt)[0]}, not a CREATE TRIGGER`)
  const relation = create.relation as { schemaname?: string; relname?: string }
  const fn = nameOf(create.funcname)
  const shown = (n: { schema?: string | undefined; name?: unknown }) => (n.schema ? `${n.schema}.${String(n.name)}` : String(n.name))
  const problems = [
    create.trigname !== expected.name && `it creates trigger ${JSON.stringify(create.trigname)}, not ${JSON.stringify(expected.name)}`,
    (relation.relname !== expected.table || (relation.schemaname !== undefined && relation.schemaname !== expected.schema)) &&
      `it is on ${shown({ schema: relation.schemaname, name: relation.relname })}, not ${expected.schema}.${expected.table}`,
    (fn.name !== expected.fn.name || (fn.schema !== undefined && expected.fn.schema !== undefined && fn.schema !== expected.fn.schema)) &&
      `it calls ${shown(fn)}, not the function the backup recreates (${shown(expected.fn)})`,
  ].filter(Boolean)
  if (problems.length) throw new Error(`${what}: ${problems.join('; ')}`)
}
