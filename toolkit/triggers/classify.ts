/**
 * What a trigger does, read from its function's body: each statement is
 * recognised as an audit copy, an activity row, a notification, a time
 * stamp, or none of those, and a trigger is of a removable kind only when
 * every statement it runs is of that one kind. Anything unread (another
 * language, dynamic SQL, a statement of no known shape) makes it
 * `business`: a wrong "keep" costs speed, a wrong "remove" loses behaviour.
 */
import type { CatalogFunction } from './catalog.ts'

export const KINDS = ['audit', 'activity', 'notify', 'timestamp', 'business'] as const
export type Kind = (typeof KINDS)[number]

export interface Classification {
  kind: Kind
  /** Why: the statement that decided, as written (lowercased, spaces collapsed). */
  reason: string
}

export const REPLACEMENT: Record<Kind, string> = {
  audit: "the SDK's db.insert|update|delete activities into audit_log",
  activity: "the SDK's db.insert|update|delete activities into audit_log",
  notify: "the collector's live tail (or a consumer of the pipeline)",
  timestamp: 'a column default (DEFAULT now()) or the app',
  business: "nothing: it is the application's own behaviour; keep it",
}

/** Comments out, strings kept (a table name may be in one), whitespace collapsed, lowercased. */
export function normalize(body: string): string {
  let out = ''
  for (let i = 0; i < body.length; ) {
    const c = body[i]!
    if (c === '-' && body[i + 1] === '-') {
      while (i < body.length && body[i] !== '\n') i++
    } else if (c === '/' && body[i + 1] === '*') {
      const end = body.indexOf('*/', i + 2)
      i = end === -1 ? body.length : end + 2
      out += ' '
    } else if (c === "'") {
      let j = i + 1
      while (j < body.length && !(body[j] === "'" && body[j + 1] !== "'")) j += body[j] === "'" ? 2 : 1
      out += body.slice(i, j + 1)
      i = j + 1
    } else {
      out += c
      i++
    }
  }
  return out.replace(/\s+/g, ' ').trim().toLowerCase()
}

/** Splits at top-level semicolons (not inside strings or parentheses). */
function statements(text: string): string[] {
  const out: string[] = []
  let depth = 0
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === "'") quoted = !quoted
    else if (quoted) continue
    else if (c === '(') depth++
    else if (c === ')') depth--
    else if (c === ';' && depth === 0) {
      out.push(text.slice(start, i))
      start = i + 1
    }
  }
  out.push(text.slice(start))
  return out.map((s) => s.trim()).filter(Boolean)
}

/** The executable part of a PL/pgSQL block: after its DECLARE section, between its first BEGIN and last END. */
function blockBody(body: string): string {
  const begin = /\bbegin\b/.exec(body)
  const end = body.lastIndexOf(' end')
  return begin ? body.slice(begin.index + 5, end > begin.index ? end : undefined) : body
}

/** Control flow around a statement: conditions and block keywords, which do nothing themselves. */
function stripControl(stmt: string): string {
  let s = stmt
  for (let before = ''; before !== s; ) {
    before = s
    s = s
      .replace(/^(end if|end loop|end case|end)\b\s*/, '')
      .replace(/^(else|begin|loop|exception)\b\s*/, '')
      .replace(/^(if|elsif|elseif|when)\b.*?\bthen\b\s*/, '')
  }
  return s.trim()
}

const NOW = String.raw`(now\(\)|current_timestamp(\(\d\))?|clock_timestamp\(\)|statement_timestamp\(\)|transaction_timestamp\(\)|localtimestamp|current_date|timezone\('utc', ?now\(\)\)|now\(\) at time zone 'utc')`
const TIMESTAMP = new RegExp(String.raw`^new\.\w+ ?:?= ?${NOW}$`)
const ROW_COPY = /\b(to_jsonb|row_to_json|to_json|hstore)\( ?(new|old)\b|\b(new|old)\.\*/
const AUDIT_TABLE = /audit|history|hist\b|log|journal|changes|versions?\b|trail/
const ACTION_COLUMN = /\b(action|event|event_type|event_name|activity|verb|operation|op)\b/
const ENTITY_COLUMN = /\b(entity\w*|record_id|row_id|object\w*|target\w*|subject\w*|resource\w*|table_name|item_id)\b/

type StatementKind = Kind | 'neutral'

interface Verdict {
  kind: StatementKind
  statement: string
}

/** `rowPassed`: the caller handed this helper a copy of the row (to_jsonb(NEW), NEW.id, ...). */
function insertKind(stmt: string, rowPassed: boolean): StatementKind {
  const m = /^insert into ([\w."]+) ?(\(([^)]*)\))?/.exec(stmt)
  if (!m) return 'business'
  const table = m[1]!.replace(/"/g, '')
  const columns = m[3] ?? ''
  const touchesRow = /\b(new|old)\.\w+/.test(stmt)
  // A copy of the row makes it an audit row, whatever else its table keeps;
  // without one, a row naming an action and an entity is an activity.
  if (ROW_COPY.test(stmt) || (rowPassed && AUDIT_TABLE.test(table))) return 'audit'
  if (ACTION_COLUMN.test(columns) && ENTITY_COLUMN.test(columns)) return 'activity'
  if (touchesRow && AUDIT_TABLE.test(table)) return 'audit'
  return 'business'
}

function statementKind(stmt: string, helper: (name: string, rowPassed: boolean) => Classification | undefined, rowPassed: boolean): Verdict {
  const s = stripControl(stmt)
  if (s === '' || s === 'null' || /^return( (new|old|null))?$/.test(s)) return { kind: 'neutral', statement: s }
  if (/^execute\b/.test(s)) return { kind: 'business', statement: s }
  if (/^(perform|select) pg_notify\(/.test(s) || /^notify \w+/.test(s)) return { kind: 'notify', statement: s }
  if (TIMESTAMP.test(s)) return { kind: 'timestamp', statement: s }
  if (s.startsWith('insert into ')) return { kind: insertKind(s, rowPassed), statement: s }
  const call = /^(?:perform|select) ([\w.]+)\(/.exec(s)
  if (call) {
    const c = helper(call[1]!, ROW_COPY.test(s) || /\b(new|old)\.\w+/.test(s))
    if (c) return { kind: c.kind, statement: `${s} -> ${c.reason}` }
  }
  return { kind: 'business', statement: s }
}

function shorten(s: string): string {
  return s.length > 160 ? `${s.slice(0, 157)}...` : s
}

/**
 * The kind of `fn`. `functions` resolves the helpers it calls, one level
 * deep: a helper calling another helper is read as business.
 */
export function classifyFunction(fn: CatalogFunction, functions: ReadonlyMap<string, CatalogFunction> = new Map(), depth = 0, rowPassed = false): Classification {
  if (fn.language !== 'plpgsql') return { kind: 'business', reason: `written in ${fn.language}, which is not read: kept` }
  const helper = (name: string, passed: boolean): Classification | undefined => {
    const f = functions.get(name) ?? functions.get(name.split('.').at(-1)!)
    if (!f) return undefined
    if (depth >= 1) return { kind: 'business', reason: `calls ${name}, more than one level deep` }
    return classifyFunction(f, functions, depth + 1, passed)
  }
  const verdicts = statements(blockBody(normalize(fn.body))).map((s) => statementKind(s, helper, rowPassed))
  const business = verdicts.find((v) => v.kind === 'business')
  if (business) return { kind: 'business', reason: shorten(business.statement) }
  const effective = verdicts.filter((v) => v.kind !== 'neutral')
  const kinds = [...new Set(effective.map((v) => v.kind))]
  if (kinds.length === 0) return { kind: 'business', reason: 'does nothing this scan recognises: kept' }
  if (kinds.length > 1) return { kind: 'business', reason: `does several things (${kinds.join(', ')}): removing it would drop all of them` }
  return { kind: kinds[0] as Kind, reason: shorten(effective[0]!.statement) }
}
