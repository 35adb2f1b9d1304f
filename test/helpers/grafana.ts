/**
 * What Grafana does to a panel's query before its datasource runs it, for
 * tests and benchmarks that have no Grafana server: the interval Grafana
 * picks, its template variables and formats, and the macros of the
 * ClickHouse datasource (grafana/clickhouse-datasource) and of the core
 * PostgreSQL datasource. Each step follows the source it cites; where that
 * source has a quirk, so does this (a test shows it).
 *
 * Order, as in the ClickHouse plugin's Datasource.applyTemplateVariables
 * (src/data/CHDatasource.ts): $__conditionalAll first, then Grafana's
 * templateSrv.replace with the plugin's format, then, in the plugin's Go
 * backend, its macros (pkg/macros/macros.go) through
 * grafana-plugin-sdk-go's sqlutil.Interpolate (data/sqlutil/macros.go).
 */

export interface TimeRange {
  from: number
  to: number
}

/** A variable as a dashboard holds it: the selected values ('$__all' for All) and, for All, every option. */
export interface VariableState {
  name: string
  type: string
  value: string | string[]
  options?: string[]
  allValue?: string
}

export interface PanelRequest {
  range: TimeRange
  /** The panel's `maxDataPoints` (Grafana uses the panel's width in pixels when it has none). */
  maxDataPoints: number
  /** The panel's `interval`, the least `$__interval` may be. */
  minInterval?: string
  variables: VariableState[]
}

/** grafana-data src/datetime/rangeutil.ts roundInterval: a "nice" interval near the one asked, in ms. */
export function roundInterval(interval: number): number {
  const steps: [number, number][] = [
    [15, 10], [35, 20], [75, 50], [150, 100], [350, 200], [750, 500], [1500, 1000], [3500, 2000], [7500, 5000],
    [12500, 10000], [17500, 15000], [25000, 20000], [45000, 30000], [90000, 60000], [210000, 120000], [450000, 300000],
    [750000, 600000], [1050000, 900000], [1500000, 1200000], [2700000, 1800000], [5400000, 3600000], [9000000, 7200000],
    [16200000, 10800000], [32400000, 21600000], [86400000, 43200000], [604800000, 86400000], [1814400000, 604800000],
    [3628800000, 2592000000],
  ]
  for (const [below, value] of steps) if (interval < below) return value
  return 31536000000
}

/** rangeutil.ts secondsToHms: the largest unit that is not zero, e.g. 3600 -> '1h'. */
export function secondsToHms(seconds: number): string {
  const units: [number, string][] = [[31536000, 'y'], [86400, 'd'], [3600, 'h'], [60, 'm'], [1, 's']]
  let rest = seconds
  for (const [size, unit] of units) {
    const n = Math.floor(rest / size)
    if (n) return `${n}${unit}`
    rest %= size
  }
  const ms = Math.floor(seconds * 1000)
  return ms ? `${ms}ms` : 'less than a millisecond'
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 }

/** rangeutil.ts intervalToMs / gtime.ParseInterval: '1h' -> 3,600,000. */
export function intervalToMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$/.exec(text.trim())
  if (!m) throw new Error(`not an interval: ${text}`)
  return Number(m[1]) * UNIT_MS[m[2]!]!
}

/** rangeutil.ts calculateInterval: the range over the panel's points, rounded, never below its min interval. */
export function panelInterval(req: PanelRequest): { intervalMs: number; interval: string } {
  const low = req.minInterval ? intervalToMs(req.minInterval) : 1
  const intervalMs = Math.max(roundInterval((req.range.to - req.range.from) / req.maxDataPoints), low)
  return { intervalMs, interval: secondsToHms(intervalMs / 1000) }
}

/**
 * The built-in variables a query may name (grafana public/app/features/
 * templating/template_srv.ts and getRangeScopedVars): $__interval and
 * $__interval_ms from the panel, $__range* and $__from/$__to from the range.
 */
function builtIns(req: PanelRequest): Map<string, string> {
  const { interval, intervalMs } = panelInterval(req)
  const rangeMs = req.range.to - req.range.from
  const rangeS = Math.round(rangeMs / 1000)
  return new Map([
    ['__interval', interval],
    ['__interval_ms', String(intervalMs)],
    ['__range', `${rangeS}s`],
    ['__range_s', String(rangeS)],
    ['__range_ms', String(rangeMs)],
    ['__from', String(req.range.from)],
    ['__to', String(req.range.to)],
  ])
}

/** Grafana's formats (public/app/features/templating/formatRegistry.ts) for the ones dashboards use. */
const FORMATS: Record<string, (v: string | string[]) => string> = {
  // Quotes escaped with a backslash, values joined by commas.
  singlequote: (v) => (Array.isArray(v) ? v : [v]).map((s) => `'${s.replace(/'/g, "\\'")}'`).join(','),
  // SQL string literals: quotes doubled.
  sqlstring: (v) => (Array.isArray(v) ? v : [v]).map((s) => `'${s.replace(/'/g, "''")}'`).join(','),
  raw: (v) => (Array.isArray(v) ? v.join(',') : v),
  csv: (v) => (Array.isArray(v) ? v.join(',') : v),
  pipe: (v) => (Array.isArray(v) ? v.join('|') : v),
}

/** The ClickHouse plugin's own format when a variable names none (CHDatasource.ts format()): a list quoted, one value as it is. */
export function clickhouseDefaultFormat(v: string | string[]): string {
  if (Array.isArray(v) && v.length > 1) return `'${v.join("','")}'`
  return Array.isArray(v) ? (v[0] ?? '') : v
}

/**
 * templateSrv.replace: `$var`, `${var}`, `${var:format}` (and `[[var]]`),
 * by Grafana's variableRegex. All is every option's value (or the
 * variable's allValue, as it is); a name that is no variable stays as
 * written, which is how `$__timeFilter(...)` reaches the backend.
 */
export function replaceVariables(text: string, req: PanelRequest, defaultFormat: (v: string | string[]) => string): string {
  const scoped = builtIns(req)
  const byName = new Map(req.variables.map((v) => [v.name, v]))
  const variableRegex = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\${(\w+)(?:\.([^:^}]+))?(?::([^}]+))?}/g
  return text.replace(variableRegex, (match, bare, bracket, bracketFormat, braced, _field, bracedFormat) => {
    const name: string = bare ?? bracket ?? braced
    const format: string | undefined = bracketFormat ?? bracedFormat
    if (format && !FORMATS[format]) throw new Error(`format ${format} is not implemented here`)
    const builtIn = scoped.get(name)
    if (builtIn !== undefined) return builtIn
    const v = byName.get(name)
    if (!v) return match
    const selected = Array.isArray(v.value) ? v.value : [v.value]
    if (selected.includes('$__all')) {
      if (v.allValue !== undefined) return v.allValue
      return format ? FORMATS[format]!(v.options ?? []) : defaultFormat(v.options ?? [])
    }
    const value = v.type === 'constant' || v.type === 'textbox' || !Array.isArray(v.value) ? selected[0]! : selected
    return format ? FORMATS[format]!(value) : defaultFormat(value)
  })
}

/** CHDatasource.ts getMacroArgs: the arguments of a macro call, split at the commas of its own parentheses. */
function macroArgs(query: string, argsIndex: number): string[] {
  const args: string[] = []
  const re = /\(|\)|,/g
  let depth = 0
  let last = 1
  const rest = query.substring(argsIndex)
  let m: RegExpExecArray | null
  while ((m = re.exec(rest)) !== null) {
    if (m[0] === '(') depth++
    else if (m[0] === ')') depth--
    if (m[0] === ',' && depth === 1) {
      args.push(rest.substring(last, re.lastIndex - 1))
      last = re.lastIndex
    }
    if (depth === 0) {
      args.push(rest.substring(last, re.lastIndex - 1))
      return args
    }
  }
  return []
}

/**
 * CHDatasource.ts applyConditionalAll: `$__conditionalAll(condition, $var)`
 * is the condition, or `1=1` when the variable is All or empty; from the
 * last call to the first.
 */
export function applyConditionalAll(rawQuery: string, variables: VariableState[]): string {
  const macro = '$__conditionalAll('
  let index = rawQuery.lastIndexOf(macro)
  while (index !== -1) {
    const params = macroArgs(rawQuery, index + macro.length - 1)
    if (params.length !== 2) return rawQuery
    const name = /(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+/.exec(params[1]!.trim())
    let phrase = params[0]!
    if (name) {
      const v = variables.find((x) => x.name === name[0])
      const value = v ? String(v.value) : undefined
      if (value === '' || value === '$__all') phrase = '1=1'
    }
    rawQuery = rawQuery.replace(`${macro}${params[0]},${params[1]})`, phrase)
    index = rawQuery.lastIndexOf(macro)
  }
  return rawQuery
}

const unix = (ms: number) => Math.floor(ms / 1000)
/** Go's time.RFC3339 in UTC: seconds, 'Z'. */
const rfc3339 = (ms: number) => new Date(unix(ms) * 1000).toISOString().replace('.000Z', 'Z')
/** Go's time.RFC3339Nano in UTC: fraction without trailing zeros, none when whole. */
const rfc3339Nano = (ms: number) => new Date(ms).toISOString().replace(/\.?0+Z$/, 'Z').replace(/\.Z$/, 'Z')
const date = (ms: number) => new Date(ms).toISOString().slice(0, 10)

type Macro = (req: PanelRequest, args: string[]) => string

function arity(name: string, args: string[], n: number): void {
  if (args.length !== n) throw new Error(`${name}: unexpected number of arguments: expected ${n} argument${n > 1 ? 's' : ''}, received ${args.length}`)
}

/**
 * The ClickHouse plugin's macros, pkg/macros/macros.go, with sqlutil's
 * defaults for the names it does not define (timeFrom, timeTo; data/sqlutil/macros.go DefaultMacros).
 */
const CLICKHOUSE_MACROS: Record<string, Macro> = {
  // timeToDateTime: toDateTime(<unix seconds>)
  fromTime: (r) => `toDateTime(${unix(r.range.from)})`,
  toTime: (r) => `toDateTime(${unix(r.range.to)})`,
  // timeToDateTime64: fromUnixTimestamp64Milli(<unix ms>)
  fromTime_ms: (r) => `fromUnixTimestamp64Milli(${r.range.from})`,
  toTime_ms: (r) => `fromUnixTimestamp64Milli(${r.range.to})`,
  timeFilter: (r, a) => (arity('timeFilter', a, 1), `${a[0]} >= toDateTime(${unix(r.range.from)}) AND ${a[0]} <= toDateTime(${unix(r.range.to)})`),
  timeFilter_ms: (r, a) => (arity('timeFilter_ms', a, 1), `${a[0]} >= fromUnixTimestamp64Milli(${r.range.from}) AND ${a[0]} <= fromUnixTimestamp64Milli(${r.range.to})`),
  // timeToDate: toDate('2006-01-02')
  dateFilter: (r, a) => (arity('dateFilter', a, 1), `${a[0]} >= toDate('${date(r.range.from)}') AND ${a[0]} <= toDate('${date(r.range.to)}')`),
  dateTimeFilter: (r, a) => dateTimeFilter(r, a),
  dt: (r, a) => dateTimeFilter(r, a),
  // math.Max(query.Interval.Seconds(), 1), truncated to an int
  timeInterval: (r, a) => (arity('timeInterval', a, 1), `toStartOfInterval(toDateTime(${a[0]}), INTERVAL ${Math.trunc(Math.max(panelInterval(r).intervalMs / 1000, 1))} second)`),
  timeInterval_ms: (r, a) => (arity('timeInterval_ms', a, 1), `toStartOfInterval(toDateTime64(${a[0]}, 3), INTERVAL ${Math.trunc(Math.max(panelInterval(r).intervalMs, 1))} millisecond)`),
  interval_s: (r) => String(Math.trunc(Math.max(panelInterval(r).intervalMs / 1000, 1))),
  // sqlutil defaults: RFC 3339 strings, one argument.
  timeFrom: (r, a) => (arity('timeFrom', a, 1), `${a[0]} >= '${rfc3339(r.range.from)}'`),
  timeTo: (r, a) => (arity('timeTo', a, 1), `${a[0]} <= '${rfc3339(r.range.to)}'`),
}

function dateTimeFilter(r: PanelRequest, a: string[]): string {
  arity('dateTimeFilter', a, 2)
  return `(${a[0]} >= toDate('${date(r.range.from)}') AND ${a[0]} <= toDate('${date(r.range.to)}')) AND (${a[1]} >= toDateTime(${unix(r.range.from)}) AND ${a[1]} <= toDateTime(${unix(r.range.to)}))`
}

/**
 * sqlutil getMacroMatches: after `$__name` (a word boundary), the text up
 * to the parenthesis that closes the first one opened is the call, if a
 * parenthesis opens before one closes. So a bare `$__fromTime` followed
 * anywhere later by `f(x)` takes `... f(x)` as its call: write `$__fromTime()`.
 */
function macroMatches(input: string, name: string): [string, string][] {
  const matches: [string, string][] = []
  for (const m of input.matchAll(new RegExp(`\\$__${name}\\b`, 'g'))) {
    const start = m.index
    const rest = input.slice(start)
    let depth = 0
    let end = 0
    let argStart = 0
    for (let i = 0; i < rest.length; i++) {
      if (depth === 0 && end > 0) break
      const c = rest[i]
      if (c === '(') {
        depth++
        if (argStart === 0) argStart = i + 1
      } else if (c === ')') {
        if (depth === 0) {
          end = 0
          break
        }
        depth--
        end = i + 1
      }
    }
    if (end === 0) end = m[0].length
    matches.push([rest.slice(0, end), argStart > 0 ? rest.slice(argStart, end - 1) : ''])
  }
  return matches
}

/** sqlutil.Interpolate with the ClickHouse plugin's macros. */
export function clickhouseMacros(sql: string, req: PanelRequest): string {
  for (const [name, macro] of Object.entries(CLICKHOUSE_MACROS)) {
    for (const [call, args] of macroMatches(sql, name)) {
      // Interpolate splits even an empty argument list: `$__fromTime()` has one, ''.
      sql = sql.split(call).join(macro(req, args.split(',').map((s) => s.trim())))
    }
  }
  const left = /\$__\w+/.exec(sql)
  if (left) throw new Error(`no macro expands ${left[0]}`)
  return sql
}

/** A ClickHouse panel's rawSql as the plugin sends it to ClickHouse. */
export function expandClickHouse(rawSql: string, req: PanelRequest): string {
  return clickhouseMacros(replaceVariables(applyConditionalAll(rawSql, req.variables), req, clickhouseDefaultFormat), req)
}

/**
 * The core PostgreSQL datasource's macros, grafana pkg/tsdb/
 * grafana-postgresql-datasource/macros.go: every `$name(args)` is one, and
 * an unknown one is an error.
 */
const POSTGRES_MACROS: Record<string, (req: PanelRequest, args: string[]) => string> = {
  __time: (_r, a) => `${a[0]} AS "time"`,
  __timeEpoch: (_r, a) => `extract(epoch from ${a[0]}) as "time"`,
  __timeFilter: (r, a) => `${a[0]} BETWEEN '${rfc3339Nano(r.range.from)}' AND '${rfc3339Nano(r.range.to)}'`,
  __timeFrom: (r) => `'${rfc3339Nano(r.range.from)}'`,
  __timeTo: (r) => `'${rfc3339Nano(r.range.to)}'`,
  __timeGroup: (_r, a) => {
    const s = intervalToMs(a[1]!.replace(/'/g, '')) / 1000
    return `floor(extract(epoch from ${a[0]})/${s})*${s}`
  },
  __timeGroupAlias: (r, a) => `${POSTGRES_MACROS.__timeGroup!(r, a)} AS "time"`,
  __unixEpochFilter: (r, a) => `${a[0]} >= ${unix(r.range.from)} AND ${a[0]} <= ${unix(r.range.to)}`,
}

/** A PostgreSQL panel's rawSql as Grafana sends it: variables (the SQL datasources quote lists), then macros. */
export function expandPostgres(rawSql: string, req: PanelRequest): string {
  const sqlDefault = (v: string | string[]) => (Array.isArray(v) ? FORMATS.sqlstring!(v) : v)
  const sql = replaceVariables(rawSql, req, sqlDefault)
  return sql.replace(/\$([_a-zA-Z0-9]+)\(([^)]*)\)/g, (_m, name: string, args: string) => {
    const macro = POSTGRES_MACROS[name]
    if (!macro) throw new Error(`unknown macro "${name}"`)
    return macro(req, args.split(',').map((s) => s.trim()))
  })
}
