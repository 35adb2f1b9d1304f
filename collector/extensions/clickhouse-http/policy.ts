/**
 * What a client's statement may reach, decided on the engine's own parse.
 *
 * The embedded engine has no access control to lean on: chDB runs every
 * connection as `default` from a users.xml it does not let us replace
 * (`--config-file` is ignored past the first connection, `CREATE USER`
 * and `GRANT` answer ACCESS_DENIED), so grants cannot say what a read key
 * may touch. `readonly = 1` refuses writes and setting changes, but not
 * `INTO OUTFILE` (clickhouse-local writes it as a client would), the scalar
 * `file()`, `KILL QUERY` or `system.processes`. So the endpoint asks the
 * engine to parse the text (`formatQuery`, which also refuses more than one
 * statement) and to print the tree of what it parsed (`EXPLAIN AST`), and
 * this module walks that tree:
 *
 * - the statement is one that reads (a SELECT, SHOW of tables, columns or
 *   settings, DESCRIBE, EXISTS, SHOW CREATE, or EXPLAIN of one of these);
 * - no SETTINGS clause, at any depth (the engine's readonly = 1 lets one
 *   through in a subquery);
 * - nothing is written on the host: a literal directly under the statement is
 *   its `INTO OUTFILE` (or `COMPRESSION`) and is refused;
 * - every table is in the store's database, `information_schema`, or one of
 *   the system tables a client needs to browse a schema; others
 *   (`system.processes`, `system.query_log`, ...) are refused;
 * - a table function is one that makes rows from its arguments (`numbers`,
 *   `values`, ...); every function that reaches a file, the network or
 *   another table outside those (the engine's other table functions, `file`
 *   in any position, `catboostEvaluate`, `joinGet`) is refused.
 *
 * Anything in the printed tree that is not shaped as the engine prints a
 * tree (an identifier holding a line break, say) is refused too: a name can
 * add a line to the dump, never hide one, and a line that does not fit is
 * not guessed at. docs/configuration.md lists the same rules for users.
 */
import { ClickHouseError } from './statement.ts'

/** Root nodes of statements that only read (EXPLAIN AST's names for them). */
const READING_STATEMENTS = new Set([
  'SelectWithUnionQuery',
  'SelectIntersectExceptQuery',
  // SHOW TABLES, DATABASES, SETTINGS, CLUSTERS: the engine reads system.tables and the like.
  'ShowTables',
  'ShowColumns',
  'ShowCreateTableQuery',
  'ShowCreateDatabaseQuery',
  'ShowCreateViewQuery',
  'DescribeQuery',
  'ExistsTableQuery',
  'ExistsDatabaseQuery',
  'ExistsViewQuery',
  'Explain',
])

/** System tables a client needs to browse a schema (Grafana's datasource, DBeaver, clickhouse-js). */
export const SYSTEM_TABLES = new Set([
  'one', 'numbers', 'numbers_mt', 'zeros', 'zeros_mt', 'databases', 'tables', 'columns', 'functions', 'table_functions',
  'formats', 'settings', 'data_type_families', 'time_zones', 'table_engines', 'collations', 'aggregate_function_combinators', 'keywords',
])

/** Table functions that make rows from their arguments alone. */
export const TABLE_FUNCTIONS = new Set(['numbers', 'numbers_mt', 'zeros', 'zeros_mt', 'generate_series', 'generateseries', 'values', 'null', 'generaterandom', 'format', 'view'])

/** Scalar functions that read the host or another table by name. */
const HOST_FUNCTIONS = ['file', 'catboostevaluate', 'joinget', 'joingetornull']

/** Functions whose right-hand argument may name a table (`x IN system.processes`). */
const IN_FUNCTIONS = new Set(['in', 'notin', 'globalin', 'globalnotin', 'nullin', 'notnullin', 'globalnullin', 'globalnotnullin'])

export interface Reach {
  /** The store's database: all its tables may be read. */
  store: string
  /** The database unqualified names resolve to in this request. */
  current: string
  /** Every table function the engine has (system.table_functions), lower-cased: those not in TABLE_FUNCTIONS are refused anywhere. */
  engineTableFunctions: ReadonlySet<string>
}

interface Node {
  kind: string
  /** The rest of the line after the kind. */
  rest: string
  children: Node[]
}

/** Databases a request may name in `?database=` or qualify a table with. */
export function readableDatabase(name: string, store: string): boolean {
  return name === store || name === 'system' || name.toLowerCase() === 'information_schema'
}

function refuse(what: string): never {
  throw new ClickHouseError(497, `${what}: this endpoint reads the store's tables and the system tables that describe them, nothing else (docs/configuration.md, server.clickhouse_http). (ACCESS_DENIED)`)
}

/** EXPLAIN AST's dump as a tree; any line out of its shape is refused. */
function tree(dump: string): Node {
  const lines = dump.replace(/\n$/, '').split('\n')
  const root: Node[] = []
  const stack: Node[] = []
  for (const line of lines) {
    const m = /^( *)([A-Za-z_][A-Za-z0-9_]*)(.*)$/.exec(line)
    const depth = m?.[1]!.length ?? -1
    if (!m || depth > stack.length || (depth === 0 && root.length > 0)) refuse('a statement the endpoint could not read back from the engine (a name with a line break in it?)')
    const node: Node = { kind: m[2]!, rest: m[3]!, children: [] }
    stack.length = depth
    if (depth === 0) root.push(node)
    else stack[depth - 1]!.children.push(node)
    stack.push(node)
  }
  if (root.length !== 1) refuse('an empty statement')
  return root[0]!
}

/** `TableIdentifier db.t (alias x)` or `Identifier t`: the name, without the alias. */
function nameOf(node: Node): string {
  return node.rest.trim().replace(/ \(alias .*\)$/s, '')
}

function checkTable(name: string, reach: Reach): void {
  const dot = name.indexOf('.')
  const database = dot === -1 ? reach.current : name.slice(0, dot)
  const table = dot === -1 ? name : name.slice(dot + 1)
  if (database === reach.store || database.toLowerCase() === 'information_schema') return
  if (database === 'system' && SYSTEM_TABLES.has(table)) return
  refuse(`table ${database}.${table} is out of reach`)
}

function functionName(node: Node): string {
  return node.rest.trim().split(' ')[0]!.toLowerCase()
}

function checkFunction(name: string, reach: Reach, asTable: boolean): void {
  if (HOST_FUNCTIONS.includes(name)) refuse(`function ${name}() reads the collector's host`)
  if ((asTable || reach.engineTableFunctions.has(name)) && !TABLE_FUNCTIONS.has(name)) refuse(`table function ${name}() reaches outside the store`)
}

function walk(node: Node, reach: Reach): void {
  switch (node.kind) {
    // A SETTINGS clause: readonly = 1 refuses it on the statement, but not inside a subquery, where it could lift a bound.
    case 'Set':
      throw new ClickHouseError(164, 'Cannot modify settings in readonly mode: a SETTINGS clause is not taken here; send settings that restrict a query or shape its output as URL parameters. (READONLY)')
    case 'TableIdentifier':
      checkTable(nameOf(node), reach)
      break
    case 'TableExpression':
      for (const child of node.children) if (child.kind === 'Function') checkFunction(functionName(child), reach, true)
      break
    case 'Function': {
      const name = functionName(node)
      checkFunction(name, reach, false)
      // `x IN t`: the right-hand identifier is a table.
      const args = node.children[0]?.children ?? []
      const right = args[1]
      if (IN_FUNCTIONS.has(name) && right?.kind === 'Identifier') checkTable(nameOf(right), reach)
      break
    }
  }
  for (const child of node.children) walk(child, reach)
}

function checkStatement(root: Node, reach: Reach): void {
  if (!READING_STATEMENTS.has(root.kind)) {
    const statement = root.kind.replace(/Query$/, '')
    throw new ClickHouseError(164, `${statement} is not allowed: this endpoint only reads. Cannot execute query in readonly mode. (READONLY)`)
  }
  for (const child of root.children) {
    // A literal under the statement itself is where its output goes: INTO OUTFILE 'path' [COMPRESSION 'x'].
    if (child.kind === 'Literal') refuse('INTO OUTFILE writes a file on the collector\'s host')
    // EXPLAIN's statement must be one that reads too (its own settings and FORMAT aside).
    if (root.kind === 'Explain' && child.kind !== 'Set' && child.kind !== 'Identifier') checkStatement(child, reach)
  }
  walk(root, reach)
}

/** Refuses the statement (ClickHouseError 164 or 497) unless it only reads what `reach` allows; returns what kind of statement it is. */
export function checkReach(astDump: string, reach: Reach): { select: boolean } {
  const root = tree(astDump)
  checkStatement(root, reach)
  return { select: root.kind === 'SelectWithUnionQuery' || root.kind === 'SelectIntersectExceptQuery' }
}

/** The FORMAT clause of a statement as the engine prints it back (always last, on a line of its own). */
export function formatClause(canonical: string): string | undefined {
  return /\nFORMAT ([A-Za-z][A-Za-z0-9_]*)$/.exec(canonical)?.[1]
}
