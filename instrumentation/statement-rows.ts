/**
 * Which rows an INSERT, UPDATE or DELETE wrote, and with what, read from the
 * statement's text and bound parameters, and from the rows it RETURNs: only
 * where the text says so plainly. A value written by an expression (now(),
 * `n + 1`, a subquery) is left out, not guessed; a statement shape not listed
 * here gives no rows at all. instrumentation/README.md ("Row identity and
 * values") has the table of shapes and what each yields.
 */

export type Operation = 'insert' | 'update' | 'delete'

export interface StatementRows {
  operation: Operation
  table: string
  /** Per row, the values the text writes (INSERT: one per VALUES tuple; UPDATE: the SET list, once). */
  written: Record<string, unknown>[]
  /** Columns the WHERE clause pins to one value each (`id = $1 AND tenant = $2`); undefined for anything else. */
  where?: Record<string, unknown>
  returning: boolean
}

type Token =
  | { t: 'word'; v: string } // keyword or bare identifier, lowercased
  | { t: 'ident'; v: string } // "quoted identifier"
  | { t: 'param'; v: number }
  | { t: 'string'; v: string }
  | { t: 'number'; v: string }
  | { t: 'punct'; v: string }

/** The statement's tokens; undefined for anything the reader does not follow (dollar quoting, E'' strings). */
function tokenize(sql: string): Token[] | undefined {
  const out: Token[] = []
  let i = 0
  while (i < sql.length) {
    const c = sql[i]!
    if (/\s/.test(c)) { i++; continue }
    if (sql.startsWith('--', i)) { const nl = sql.indexOf('\n', i); i = nl < 0 ? sql.length : nl + 1; continue }
    if (sql.startsWith('/*', i)) { const end = sql.indexOf('*/', i + 2); if (end < 0) return undefined; i = end + 2; continue }
    if (c === "'") {
      let v = ''
      let j = i + 1
      for (;;) {
        const q = sql.indexOf("'", j)
        if (q < 0) return undefined
        v += sql.slice(j, q)
        if (sql[q + 1] === "'") { v += "'"; j = q + 2; continue }
        i = q + 1
        break
      }
      out.push({ t: 'string', v })
      continue
    }
    if (c === '"') {
      const m = /^"((?:[^"]|"")+)"/.exec(sql.slice(i))
      if (!m) return undefined
      out.push({ t: 'ident', v: m[1]!.replaceAll('""', '"') })
      i += m[0].length
      continue
    }
    const rest = sql.slice(i, i + 64)
    let m: RegExpExecArray | null
    if ((m = /^\$(\d{1,5})/.exec(rest))) { out.push({ t: 'param', v: Number(m[1]) }); i += m[0].length; continue }
    if (c === '$') return undefined // $tag$ quoting
    if ((m = /^[A-Za-z_][\w$]*/.exec(rest))) {
      // E'..', B'..', U&'..': escapes this reader does not decode.
      if (sql[i + m[0].length] === "'" || sql[i + m[0].length] === '&') return undefined
      out.push({ t: 'word', v: m[0].toLowerCase() }); i += m[0].length; continue
    }
    if ((m = /^(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)/.exec(rest))) { out.push({ t: 'number', v: m[0] }); i += m[0].length; continue }
    if ((m = /^(?:::|<>|!=|<=|>=|\|\||[-+*/%<>=~!@#^&|`?])/.exec(rest))) { out.push({ t: 'punct', v: m[0] }); i += m[0].length; continue }
    out.push({ t: 'punct', v: c })
    i++
  }
  return out
}

const NOT_A_VALUE = Symbol('not a value')

class Reader {
  private at = 0
  constructor(private readonly tokens: Token[], private readonly params: readonly unknown[]) {}

  peek(offset = 0): Token | undefined { return this.tokens[this.at + offset] }
  done(): boolean { return this.at >= this.tokens.length || (this.isPunct(';') && this.at === this.tokens.length - 1) }
  isWord(...words: string[]): boolean { const t = this.peek(); return t?.t === 'word' && words.includes(t.v) }
  isPunct(p: string): boolean { const t = this.peek(); return t?.t === 'punct' && t.v === p }
  word(...words: string[]): boolean { if (!this.isWord(...words)) return false; this.at++; return true }
  punct(p: string): boolean { if (!this.isPunct(p)) return false; this.at++; return true }

  /** An identifier: a bare word (lowercased, as PostgreSQL folds it) or a quoted one. */
  name(): string | undefined {
    const t = this.peek()
    if (t?.t !== 'word' && t?.t !== 'ident') return undefined
    this.at++
    return t.v
  }

  /** `table` or `schema.table`: the table's name. */
  table(): string | undefined {
    let name = this.name()
    if (name !== undefined && this.punct('.')) name = this.name()
    return name
  }

  /** Skips an optional alias after the table, `[AS] name`, unless the next word is one of the clauses that may follow. */
  alias(...clauses: string[]): void {
    if (this.word('as')) return void this.name()
    const t = this.peek()
    if (t?.t === 'ident' || (t?.t === 'word' && !clauses.includes(t.v))) this.name()
  }

  /**
   * The tokens of one expression, up to a comma or closing parenthesis at its
   * own depth (or a stop word): its value when it is a parameter (with an
   * optional ::cast), a literal, NULL or a boolean; NOT_A_VALUE otherwise.
   */
  value(stops: readonly string[] = []): unknown {
    const start = this.at
    let depth = 0
    for (; this.at < this.tokens.length; this.at++) {
      const t = this.tokens[this.at]!
      if (t.t === 'punct' && t.v === '(') depth++
      else if (t.t === 'punct' && t.v === ')') { if (depth === 0) break; depth-- }
      else if (depth === 0 && t.t === 'punct' && (t.v === ',' || t.v === ';')) break
      else if (depth === 0 && t.t === 'word' && stops.includes(t.v)) break
    }
    const expr = this.tokens.slice(start, this.at)
    // `$1::jsonb`, `'x'::text`: the cast does not change what was sent.
    const bare = expr.length === 3 && expr[1]!.t === 'punct' && expr[1]!.v === '::' && expr[2]!.t === 'word' ? [expr[0]!] : expr
    if (bare.length === 2 && bare[0]!.t === 'punct' && bare[0]!.v === '-' && bare[1]!.t === 'number') return Number(`-${bare[1]!.v}`)
    if (bare.length !== 1) return NOT_A_VALUE
    const t = bare[0]!
    if (t.t === 'param') return t.v >= 1 && t.v <= this.params.length ? this.params[t.v - 1] : NOT_A_VALUE
    if (t.t === 'string') return t.v
    if (t.t === 'number') return Number.isSafeInteger(Number(t.v)) || t.v.includes('.') ? Number(t.v) : t.v
    if (t.t === 'word' && t.v === 'null') return null
    if (t.t === 'word' && (t.v === 'true' || t.v === 'false')) return t.v === 'true'
    return NOT_A_VALUE
  }

  /** `col = value [AND col = value ...]` up to RETURNING or the end; undefined for any other condition (OR, IN, <, a subquery). */
  equalities(): Record<string, unknown> | undefined {
    const out: Record<string, unknown> = {}
    do {
      let column = this.name()
      // `orders.id`, `o.id`: the statement has one table, so any qualifier is it.
      if (column !== undefined && this.punct('.')) column = this.name()
      if (column === undefined || !this.punct('=')) return undefined
      const v = this.value(['and', 'or', 'returning'])
      if (v === NOT_A_VALUE || this.isWord('or')) return undefined
      out[column] = v
    } while (this.word('and'))
    return out
  }

  /** Moves past `word` at the statement's own depth; false when it is not there. */
  skipPast(word: string): boolean {
    let depth = 0
    for (; this.at < this.tokens.length; this.at++) {
      const t = this.tokens[this.at]!
      if (t.t === 'punct' && t.v === '(') depth++
      else if (t.t === 'punct' && t.v === ')') depth--
      else if (depth === 0 && t.t === 'word' && t.v === word) { this.at++; return true }
    }
    return false
  }
}

/** The rows an INSERT, UPDATE or DELETE names; undefined when the text is not one of the shapes read here. */
export function readStatement(text: string, params: readonly unknown[] | undefined): StatementRows | undefined {
  const tokens = tokenize(text)
  if (!tokens) return undefined
  const r = new Reader(tokens, params ?? [])
  if (r.word('insert')) return readInsert(r)
  if (r.word('update')) return readUpdate(r)
  if (r.word('delete')) return readDelete(r)
  return undefined
}

function readInsert(r: Reader): StatementRows | undefined {
  if (!r.word('into')) return undefined
  const table = r.table()
  if (!table) return undefined
  r.alias('values')
  if (!r.punct('(')) return undefined
  const columns: string[] = []
  do {
    const c = r.name()
    if (c === undefined) return undefined
    columns.push(c)
  } while (r.punct(','))
  if (!r.punct(')') || !r.word('values')) return undefined
  const written: Record<string, unknown>[] = []
  do {
    if (!r.punct('(')) return undefined
    const row: Record<string, unknown> = {}
    for (let i = 0; i < columns.length; i++) {
      if (i > 0 && !r.punct(',')) return undefined
      const v = r.value()
      if (v !== NOT_A_VALUE) row[columns[i]!] = v
    }
    if (!r.punct(')')) return undefined
    written.push(row)
  } while (r.punct(','))
  // ON CONFLICT ... may follow: the rows sent are still these.
  if (!r.done() && !r.isWord('on', 'returning')) return undefined
  return { operation: 'insert', table, written, returning: r.skipPast('returning') }
}

function readUpdate(r: Reader): StatementRows | undefined {
  r.word('only')
  const table = r.table()
  if (!table) return undefined
  r.alias('set')
  if (!r.word('set')) return undefined
  const set: Record<string, unknown> = {}
  do {
    const column = r.name()
    if (column === undefined || !r.punct('=')) return undefined
    const v = r.value(['where', 'from', 'returning'])
    if (v !== NOT_A_VALUE) set[column] = v
  } while (r.punct(','))
  const rows: StatementRows = { operation: 'update', table, written: [set], returning: false }
  return conditions(r, rows)
}

function readDelete(r: Reader): StatementRows | undefined {
  if (!r.word('from')) return undefined
  r.word('only')
  const table = r.table()
  if (!table) return undefined
  r.alias('where', 'using', 'returning')
  return conditions(r, { operation: 'delete', table, written: [], returning: false })
}

/** WHERE, when it pins columns, and RETURNING of an UPDATE or DELETE; with FROM or USING (a join) the rows are unknown. */
function conditions(r: Reader, rows: StatementRows): StatementRows {
  if (r.word('where')) {
    const where = r.equalities()
    if (where && (r.done() || r.isWord('returning'))) rows.where = where
  }
  rows.returning = r.skipPast('returning')
  return rows
}

/** A bound parameter's place in a statement read once as a template. */
class Param {
  constructor(readonly index: number) {}
}

/** Statements longer than this are read every time rather than kept. */
const MAX_CACHED_TEXT = 16 * 1024

/**
 * readStatement, with each statement text read once: an app sends the same
 * few parameterised statements over and over, so the text's shape (table,
 * columns, which parameter goes where) is kept, most recently used first,
 * and each call only puts its parameters in their places.
 */
export function statementReader(capacity = 512): (text: string, params: readonly unknown[] | undefined) => StatementRows | undefined {
  const cache = new Map<string, StatementRows | null>()
  return (text, params) => {
    if (text.length > MAX_CACHED_TEXT) return readStatement(text, params)
    let shape = cache.get(text)
    if (shape === undefined) {
      let highest = 0
      for (const m of text.matchAll(/\$(\d{1,5})/g)) highest = Math.max(highest, Number(m[1]))
      shape = readStatement(text, Array.from({ length: highest }, (_, i) => new Param(i))) ?? null
      if (cache.size >= capacity) cache.delete(cache.keys().next().value!)
    } else cache.delete(text)
    cache.set(text, shape)
    return shape ? bind(shape, params ?? []) : undefined
  }
}

function bind(shape: StatementRows, params: readonly unknown[]): StatementRows {
  const row = (from: Record<string, unknown>) => {
    const out: Record<string, unknown> = {}
    for (const column in from) {
      const v = from[column]
      if (!(v instanceof Param)) out[column] = v
      // A parameter the call did not send is no value, as readStatement has it.
      else if (v.index < params.length) out[column] = params[v.index]
    }
    return out
  }
  const bound: StatementRows = { operation: shape.operation, table: shape.table, written: shape.written.map(row), returning: shape.returning }
  if (shape.where) bound.where = row(shape.where)
  return bound
}
