/**
 * The URL parameters of a request, as ClickHouse reads them: the protocol's
 * own (query, database, credentials, compression, ...), `param_` values, and
 * settings. A setting is honoured when it only restricts the query or only
 * shapes its output; one that would lift a bound, or that names a file
 * (`format_schema`, `output_format_schema`, ...), is refused with 164 as a
 * read-only ClickHouse user would be.
 */
import { availableParallelism } from 'node:os'
import type { ClickHouseHttpConfig } from './config.ts'
import { ClickHouseError } from './statement.ts'

/** Parameters of the HTTP protocol itself, not settings: read by the endpoint or harmless to ignore. */
const PROTOCOL = new Set([
  'query', 'database', 'default_format', 'query_id', 'user', 'password', 'quota_key',
  // Sessions: every request is a session of its own here, so these change nothing.
  'session_id', 'session_timeout', 'session_check',
  'compress', 'decompress', 'enable_http_compression', 'http_zlib_compression_level',
  // The endpoint always waits for the end of the query, and sends progress once, with the summary.
  'wait_end_of_query', 'send_progress_in_http_headers', 'http_headers_progress_interval_ms', 'http_response_buffer_size', 'buffer_size',
  'cancel_http_readonly_queries_on_client_close', 'http_wait_end_of_query',
])

const BOOL = /^(0|1|true|false)$/i
const bool = (value: string) => (BOOL.test(value) ? value : undefined)
const oneOf = (...values: string[]) => (value: string) => (values.includes(value) ? value : undefined)
const positive = (value: string) => (/^\d+$/.test(value) && Number(value) > 0 ? Number(value) : undefined)

/** Lower than the bound, never 0 (which means "no limit"). */
const atMost = (bound: (c: ClickHouseHttpConfig) => number) => (value: string, config: ClickHouseHttpConfig) => {
  const n = positive(value)
  return n !== undefined && n <= bound(config) ? String(n) : undefined
}

/** Each honoured setting: the value to set, or undefined when the value would lift a bound or is not one the setting takes. */
const SETTINGS: Record<string, (value: string, config: ClickHouseHttpConfig) => string | undefined> = {
  max_result_rows: atMost((c) => c.max_result_rows),
  max_result_bytes: atMost((c) => c.max_result_bytes),
  max_memory_usage: atMost((c) => c.max_memory_usage_bytes),
  max_execution_time: atMost((c) => c.max_execution_time_s),
  max_threads: (value) => (positive(value) !== undefined && Number(value) <= availableParallelism() ? value : undefined),
  // Stricter than the endpoint's readonly = 1 is nothing; 0 would lift it.
  readonly: oneOf('1', '2'),
  result_overflow_mode: oneOf('throw', 'break'),
  date_time_output_format: oneOf('simple', 'iso', 'unix_timestamp'),
  join_use_nulls: bool,
  extremes: bool,
  output_format_json_quote_64bit_integers: bool,
  output_format_json_quote_64bit_floats: bool,
  output_format_json_quote_decimals: bool,
  output_format_json_quote_denormals: bool,
  output_format_json_named_tuples_as_objects: bool,
  output_format_decimal_trailing_zeros: bool,
  output_format_write_statistics: bool,
  output_format_tsv_crlf_end_of_line: bool,
  output_format_csv_crlf_end_of_line: bool,
  output_format_pretty_color: oneOf('0', '1', 'auto'),
  output_format_pretty_max_rows: (value) => (positive(value) !== undefined ? value : undefined),
  format_csv_delimiter: (value) => (value.length === 1 && value !== '\n' ? value : undefined),
  session_timezone: (value) => (/^[A-Za-z0-9_+\-/]{1,64}$/.test(value) ? value : undefined),
}

export interface RequestParameters {
  /** `param_<name>` values, for `{name:Type}` placeholders. */
  params: Record<string, string>
  /** Settings to set on the request's session, each checked. */
  settings: Record<string, string>
  /** The longest the query may run, seconds. */
  timeoutS: number
  /** The output limit, bytes. */
  maxBytes: number
}

export function readParameters(search: URLSearchParams, config: ClickHouseHttpConfig): RequestParameters {
  const out: RequestParameters = { params: {}, settings: {}, timeoutS: config.max_execution_time_s, maxBytes: config.max_result_bytes }
  for (const [name, value] of search) {
    if (name.startsWith('param_')) {
      out.params[name.slice(6)] = value
      continue
    }
    if (PROTOCOL.has(name)) continue
    const rule = SETTINGS[name]
    const accepted = rule?.(value, config)
    if (accepted === undefined) {
      const why = rule ? `the value ${JSON.stringify(value.slice(0, 64))} would lift the endpoint's bound or is not one it takes` : 'the endpoint takes only settings that restrict a query or shape its output'
      throw new ClickHouseError(164, `Cannot modify '${name.slice(0, 128)}' setting in readonly mode: ${why}. (READONLY)`)
    }
    if (name === 'readonly') continue
    out.settings[name] = accepted
    if (name === 'max_execution_time') out.timeoutS = Number(accepted)
    if (name === 'max_result_bytes') out.maxBytes = Number(accepted)
  }
  return out
}
