/**
 * Timestamp text for the stores. Rows of one request share received_at and
 * often timestamp, so remembering the last conversion skips most Date work
 * on the export path.
 */
let lastMs = NaN
let lastIso = ''

/** RFC 3339 in UTC with milliseconds, as PostgreSQL's timestamptz reads it. */
export function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms
    lastIso = new Date(ms).toISOString()
  }
  return lastIso
}

/** ClickHouse's text form of DateTime64(3, 'UTC'), read without best_effort parsing. */
export function clickhouseTime(ms: number): string {
  const iso = isoTime(ms)
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`
}
