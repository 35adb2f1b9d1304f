/**
 * What no store can hold, decided once for every way a value comes in (the
 * activity receivers, the query API's parameters): the rules are in
 * docs/event-contract.md ("Values the stores cannot hold").
 *
 * - A lone UTF-16 surrogate (U+D800-U+DFFF without its pair) is not a
 *   Unicode character: ClickHouse refuses the JSON escape (`\ud800`, code 25)
 *   and PostgreSQL's jsonb refuses it too. Rejected.
 * - NUL (U+0000) cannot be in a PostgreSQL text or jsonb value (22P05/22021).
 *   Rejected, not stripped: a stripped value is not what was sent, and an
 *   audit trail must not store what nobody said.
 * - A number JSON cannot carry (1e400 parses as Infinity, and would be
 *   written as null). Rejected.
 * - Nesting deeper than `LIMITS.depth`: every JSON encoder recurses, so a
 *   value nested thousands deep overflows the stack of the first one that
 *   touches it. Rejected before anything recurses into it; this walk itself
 *   stops at the limit.
 * Other control characters (U+0001-U+001F, U+007F) are valid text that both
 * stores hold as sent: they are kept.
 */

/** Deepest nesting of objects and arrays inside one activity (the activity itself is level 1). */
export const MAX_DEPTH = 32

/** Why `s` cannot be stored, or undefined. */
export function stringProblem(s: string): string | undefined {
  if (!s.isWellFormed()) {
    return `contains a lone UTF-16 surrogate at index ${loneSurrogateAt(s)}: send valid Unicode (encode binary data, e.g. as base64)`
  }
  const nul = s.indexOf('\0')
  if (nul !== -1) return `contains a NUL character (U+0000) at index ${nul}, which PostgreSQL cannot store`
  return undefined
}

function loneSurrogateAt(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
      else return i
    } else if (c >= 0xdc00 && c <= 0xdfff) return i
  }
  return -1
}

export interface ValueProblem {
  /** Dotted path inside the value ('' for the value itself). */
  path: string
  message: string
}

/**
 * Walk a parsed JSON value once: every string and key, every number, the
 * nesting depth. Returns the first problem, or the value's size: the
 * characters of its JSON text, counting each string character once (so
 * escapes are not expanded; ASCII text makes that bytes).
 */
export function inspectValue(value: unknown, depthLeft = MAX_DEPTH): ValueProblem | { size: number } {
  const state = { size: 0 }
  const problem = walk(value, depthLeft, state)
  return problem ?? state
}

function walk(value: unknown, depthLeft: number, state: { size: number }): ValueProblem | undefined {
  switch (typeof value) {
    case 'string': {
      const message = stringProblem(value)
      if (message) return { path: '', message }
      state.size += value.length + 2
      return undefined
    }
    case 'number':
      if (!Number.isFinite(value)) return { path: '', message: 'is a number out of range (JSON numbers must be finite doubles, up to about 1.8e308)' }
      state.size += 8
      return undefined
    case 'boolean':
      state.size += 5
      return undefined
    case 'object': {
      if (value === null) {
        state.size += 4
        return undefined
      }
      if (depthLeft <= 0) return { path: '', message: `is nested more than ${MAX_DEPTH} levels deep` }
      state.size += 2
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const p = walk(value[i], depthLeft - 1, state)
          if (p) return { path: p.path ? `${i}.${p.path}` : String(i), message: p.message }
          state.size += 1
        }
        return undefined
      }
      for (const key of Object.keys(value)) {
        const keyMessage = stringProblem(key)
        if (keyMessage) return { path: printable(key), message: `has a key that ${keyMessage}` }
        state.size += key.length + 4
        const p = walk((value as Record<string, unknown>)[key], depthLeft - 1, state)
        if (p) return { path: p.path ? `${printable(key)}.${p.path}` : printable(key), message: p.message }
      }
      return undefined
    }
    default:
      // undefined, functions, symbols, bigints: never out of JSON.parse.
      return { path: '', message: `is not a JSON value (${typeof value})` }
  }
}

/**
 * Text both stores hold, for a value that must be kept rather than refused
 * (a row value the SDK read, a key in an error message): a lone surrogate
 * becomes U+FFFD, a NUL the six characters \u0000.
 */
export function storableText(s: string): string {
  const wellFormed = s.isWellFormed() ? s : s.toWellFormed()
  return wellFormed.includes('\0') ? wellFormed.replaceAll('\0', '\\u0000') : wellFormed
}

/** A key as it may appear in an error message: valid text, at most 64 characters. */
export function printable(key: string): string {
  const safe = storableText(key)
  return safe.length > 64 ? `${safe.slice(0, 61)}...` : safe
}
