/**
 * ClickHouse's side of the protocol: its exceptions and their HTTP statuses,
 * and `{name:Type}` placeholders bound as a server binds `param_name`.
 * What a statement may do is policy.ts's, on the engine's own parse.
 */
import { clickhouseIdentifier, clickhouseString } from '../../../lib/sql.ts'

export class ClickHouseError extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** Seconds a client should wait before trying again (Retry-After). */
    readonly retryAfter?: number,
    /** A status other than ClickHouse's for the code (429 for a blocked address). */
    readonly status?: number,
  ) {
    super(message)
    this.name = 'ClickHouseError'
  }
}

/**
 * The statement's code with strings, quoted names and comments blanked out,
 * so a placeholder inside them is not taken for one. Only ever given the
 * engine's own printing of a statement (formatQuery), whose strings are
 * always '...' with backslash escapes and which has no comments or heredocs.
 */
function code(sql: string): string {
  let out = ''
  for (let i = 0; i < sql.length; ) {
    const c = sql[i]!
    if (c === "'" || c === '"' || c === '`') {
      let j = i + 1
      while (j < sql.length && sql[j] !== c) j += sql[j] === '\\' ? 2 : 1
      out += ' '.repeat(Math.min(j + 1, sql.length) - i)
      i = j + 1
    } else {
      out += c
      i++
    }
  }
  return out
}

/** ClickHouse's status for an exception code (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp). */
export function httpStatus(code: number): number {
  if (code === 194) return 401
  // Over the collector's memory limit: a state to wait out, as ingest's 429/503.
  if (code === 241) return 503
  if ([192, 193, 516, 497].includes(code)) return 403
  // 306 (a query nested past max_parser_depth) is the client's query too: 400 here, where ClickHouse answers 500.
  if ([36, 6, 25, 26, 27, 38, 41, 72, 441, 676, 677, 15, 44, 8, 62, 117, 53, 321, 306].includes(code)) return 400
  if ([60, 46, 47, 50, 56, 81, 115, 63, 73].includes(code)) return 404
  if (code === 229) return 413
  if (code === 48) return 501
  if (code === 159) return 408
  // 210: the store is not connected yet (ours; ClickHouse sends 503 for its own socket timeouts too).
  if (code === 209 || code === 210) return 503
  return 500
}

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', r: '\r', n: '\n', t: '\t', '0': '\0', a: '\x07', v: '\v' }

/** ClickHouse's "escaped" text (how a param_ value of a String type arrives) back to the value. */
function unescape(text: string): string {
  return text.replace(/\\(x[0-9a-fA-F]{2}|.)/gs, (_, c: string) => (c.length === 3 ? String.fromCharCode(parseInt(c.slice(1), 16)) : (ESCAPES[c] ?? c)))
}

const STRING_TYPE = /^\s*(LowCardinality\(\s*)?(Nullable\(\s*)?(String|FixedString\(\d+\))\s*\)?\s*\)?\s*$/

/**
 * `{name:Type}` placeholders bound as ClickHouse binds `param_name`: the
 * value's text parsed as Type. Spelled as a cast of a literal in the
 * statement (an Identifier as a quoted name), because the embedded engine's
 * own binder re-escapes text and would read `param_x=t\'1` as `t\'1`.
 * Only placeholders in code are bound, never text inside a string literal.
 */
export function bindParams(sql: string, params: Readonly<Record<string, string>>): string {
  const blanked = code(sql)
  let out = ''
  let last = 0
  for (const m of blanked.matchAll(/\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}/g)) {
    const [, name, type] = m as unknown as [string, string, string]
    const text = params[name]
    if (text === undefined) throw new ClickHouseError(456, `Substitution \`${name}\` is not set. (UNKNOWN_QUERY_PARAMETER)`)
    let value: string
    if (type === 'Identifier') value = clickhouseIdentifier(text)
    else if (STRING_TYPE.test(type)) value = /Nullable/.test(type) && text === '\\N' ? `CAST(NULL AS ${type})` : `CAST(${clickhouseString(unescape(text))} AS ${type})`
    // accurateCast, not CAST: a value out of the type's range is an error (param_n=1000 for UInt8), not 232.
    else value = `accurateCast(${clickhouseString(text)}, ${clickhouseString(type)})`
    out += sql.slice(last, m.index) + value
    last = m.index! + m[0].length
  }
  return out + sql.slice(last)
}
