/** The expansion of Grafana's variables and the datasources' macros, each against what the cited source produces. */
import { describe, expect, it } from 'vitest'
import { applyConditionalAll, expandClickHouse, expandPostgres, panelInterval, secondsToHms, type PanelRequest } from '../helpers/grafana.ts'

const from = Date.UTC(2026, 10, 1, 10, 30, 15, 250)
const to = Date.UTC(2026, 10, 2, 10, 30, 15, 0)
const req = (over: Partial<PanelRequest> = {}): PanelRequest => ({
  range: { from, to },
  maxDataPoints: 1000,
  variables: [
    { name: 'tenant', type: 'query', value: ['acme', "o'neil"], options: ['acme', "o'neil", 'x'] },
    { name: 'svc', type: 'query', value: ['$__all'], options: ['api', 'web'] },
    { name: 'one', type: 'query', value: ['api'] },
    { name: 'text', type: 'textbox', value: "it's" },
  ],
  ...over,
})
const s = Math.floor(from / 1000)
const e = Math.floor(to / 1000)

describe('Grafana intervals (rangeutil.calculateInterval)', () => {
  it('rounds the range over the points and respects the min interval', () => {
    expect(panelInterval(req())).toEqual({ intervalMs: 60_000, interval: '1m' }) // 86.4 s -> 1m
    expect(panelInterval(req({ minInterval: '1h' }))).toEqual({ intervalMs: 3_600_000, interval: '1h' })
    expect(panelInterval({ ...req(), range: { from: to - 30 * 86_400_000, to }, maxDataPoints: 500 }).interval).toBe('1h')
    expect(secondsToHms(90)).toBe('1m')
    expect(secondsToHms(0.5)).toBe('500ms')
  })
})

describe('ClickHouse datasource macros (pkg/macros/macros.go)', () => {
  it.each([
    ['$__timeFilter(ts)', `ts >= toDateTime(${s}) AND ts <= toDateTime(${e})`],
    ['$__timeFilter_ms(ts)', `ts >= fromUnixTimestamp64Milli(${from}) AND ts <= fromUnixTimestamp64Milli(${to})`],
    ['$__fromTime', `toDateTime(${s})`],
    ['$__toTime()', `toDateTime(${e})`],
    ['$__fromTime_ms', `fromUnixTimestamp64Milli(${from})`],
    ['$__toTime_ms', `fromUnixTimestamp64Milli(${to})`],
    ['$__dateFilter(d)', "d >= toDate('2026-11-01') AND d <= toDate('2026-11-02')"],
    ['$__dateTimeFilter(d, ts)', `(d >= toDate('2026-11-01') AND d <= toDate('2026-11-02')) AND (ts >= toDateTime(${s}) AND ts <= toDateTime(${e}))`],
    ['$__dt(d, ts)', `(d >= toDate('2026-11-01') AND d <= toDate('2026-11-02')) AND (ts >= toDateTime(${s}) AND ts <= toDateTime(${e}))`],
    ['$__timeInterval(ts)', 'toStartOfInterval(toDateTime(ts), INTERVAL 60 second)'],
    ['$__timeInterval_ms(ts)', 'toStartOfInterval(toDateTime64(ts, 3), INTERVAL 60000 millisecond)'],
    ['$__interval_s', '60'],
    ['$__timeFrom(ts)', "ts >= '2026-11-01T10:30:15Z'"],
    ['$__timeTo(ts)', "ts <= '2026-11-02T10:30:15Z'"],
    ['$__interval / $__interval_ms / $__range_s', '1m / 60000 / 86400'],
  ])('%s', (macro, expansion) => {
    expect(expandClickHouse(macro, req())).toBe(expansion)
  })

  it('takes a bare macro followed later by parentheses as a call, as sqlutil getMacroMatches does', () => {
    // Why the dashboards always write $__fromTime(): the bare form swallows up to the next closing parenthesis.
    expect(expandClickHouse('$__fromTime AND count(x)', req())).toBe(`toDateTime(${s})`)
    expect(expandClickHouse('$__fromTime() AND count(x)', req())).toBe(`toDateTime(${s}) AND count(x)`)
  })

  it('refuses a macro with the wrong number of arguments, and an unknown one', () => {
    expect(() => expandClickHouse('$__timeFilter(a, b)', req())).toThrow(/expected 1 argument, received 2/)
    expect(() => expandClickHouse('$__nope(a)', req())).toThrow(/no macro expands \$__nope/)
  })

  it('$__conditionalAll is its condition unless the variable is All (CHDatasource.applyConditionalAll)', () => {
    expect(applyConditionalAll('$__conditionalAll(a IN (${svc:singlequote}), $svc) AND $__conditionalAll(t IN ($tenant), ${tenant})', req().variables)).toBe('1=1 AND t IN ($tenant)')
  })

  it('formats variables as Grafana does for the plugin', () => {
    expect(expandClickHouse('${tenant:singlequote}|$tenant|${one}|${svc:singlequote}|$svc|${text}', req())).toBe(
      "'acme','o\\'neil'|'acme','o'neil'|api|'api','web'|'api','web'|it's",
    )
  })
})

describe('PostgreSQL datasource macros (pkg/tsdb/grafana-postgresql-datasource/macros.go)', () => {
  it.each([
    ['$__timeFilter(t)', "t BETWEEN '2026-11-01T10:30:15.25Z' AND '2026-11-02T10:30:15Z'"],
    ['$__timeFrom()', "'2026-11-01T10:30:15.25Z'"],
    ['$__timeGroupAlias(t, $__interval)', 'floor(extract(epoch from t)/60)*60 AS "time"'],
    ['$__unixEpochFilter(t)', `t >= ${s} AND t <= ${e}`],
    ['${text:sqlstring}', "'it''s'"],
    ['$tenant', "'acme','o''neil'"],
  ])('%s', (macro, expansion) => {
    expect(expandPostgres(macro, req())).toBe(expansion)
  })

  it('an unknown macro is an error', () => {
    expect(() => expandPostgres('$__nope(x)', req())).toThrow(/unknown macro/)
  })
})
