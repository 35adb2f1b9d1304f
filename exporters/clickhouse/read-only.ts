/**
 * Read-only sessions on the embedded engine, for the ClickHouse HTTP
 * endpoint. Each request gets a chDB connection of its own on the store's
 * data directory (one engine per process; a connection is its own session
 * with its own settings and current database, ~2.5 ms to open here): its
 * bounds and the client's honoured settings are set first, then
 * `readonly = 1`, after which the engine refuses every write and every
 * further setting change (code 164). Closing it after the request means a
 * `USE`, a setting or a failed statement never reaches the next client.
 * Requests run one at a time: a dashboard's panels queue here instead of
 * taking every core from ingest, and at most one result is in memory.
 */
import type { Session } from 'chdb'
import { serialQueue } from '../../lib/serial.ts'
import { clickhouseIdentifier, clickhouseString } from '../../lib/sql.ts'
import type { ReadOnlyRequest, ReadOnlySql, SqlError, SqlLimits, StreamedResult, StreamOptions } from '../../schemas/component.ts'

interface ChdbError extends Error {
  clickhouseCode?: number
  cause?: unknown
}

/** chDB wraps a message in its code once per layer ("Code: 73. DB::Exception: Code: 73. ..."): keep the message and its type. */
function storeError(err: unknown): SqlError {
  const e = err as ChdbError
  let message = String(e.message ?? err)
  const cause = e.cause as ChdbError | undefined
  const code = typeof e.clickhouseCode === 'number' ? e.clickhouseCode : typeof cause?.clickhouseCode === 'number' ? cause.clickhouseCode : Number(/^Code: (\d+)\./.exec(message)?.[1] ?? 1001)
  while (/^Code: \d+\. DB::Exception: /.test(message)) message = message.replace(/^Code: \d+\. DB::Exception: /, '')
  // Keep "(TYPE)", which clients parse; drop the version and the outer layers after it.
  const version = message.indexOf(' (version ')
  if (version !== -1) message = message.slice(0, version)
  return Object.assign(new Error(message), { name: 'SqlError', storeCode: code })
}

const sqlError = (code: number, message: string): SqlError => Object.assign(new Error(message), { name: 'SqlError', storeCode: code })

/** A setting's value as a literal: numbers as numbers, anything else as a string the engine parses for the setting's type. */
const settingValue = (value: string) => (/^-?\d+(\.\d+)?$/.test(value) ? value : clickhouseString(value))

export async function openReadOnlySql(path: string, database: string, limits: SqlLimits, nice: number): Promise<ReadOnlySql> {
  const { Session } = await import('chdb')
  const serial = serialQueue()
  const open = new Set<Session>()
  let closed = false
  const bounds: [string, string][] = [
    ['max_execution_time', String(limits.max_execution_time_s)],
    ['max_result_rows', String(limits.max_result_rows)],
    ['max_result_bytes', String(limits.max_result_bytes)],
    ['result_overflow_mode', 'throw'],
    ['timeout_overflow_mode', 'throw'],
    ['max_memory_usage', String(limits.max_memory_usage_bytes)],
    // A streamed result comes a block at a time, each formatted whole: at the default
    // 65,409 rows a block of 500-byte strings is 32 MB, at 8,192 it is 4 MB (same speed
    // for aggregations here), so the output cap bounds memory, not the block.
    ['max_block_size', '8192'],
    // As a ClickHouse server answers (clickhouse-local's default differs): JSON carries 64-bit integers as strings.
    ['output_format_json_quote_64bit_integers', '1'],
    // Dashboards wait for ingest, not the other way round.
    ['os_thread_priority', String(nice)],
  ]

  async function run<T>(session: Session, sql: string, read: (bytes: Uint8Array) => T): Promise<T> {
    try {
      return read((await session.queryAsync(sql, { format: 'TSVRaw' })).bytes())
    } catch (err) {
      throw storeError(err)
    }
  }

  return {
    database,
    request: <T>(request: ReadOnlyRequest, work: Parameters<ReadOnlySql['request']>[1]) =>
      serial(async () => {
        if (closed) throw sqlError(210, 'the store is closing. (NETWORK_ERROR)')
        if (request.signal?.aborted) throw sqlError(159, 'Timeout exceeded while waiting for the queries before it. (TIMEOUT_EXCEEDED)')
        const session = new Session(path)
        open.add(session)
        try {
          // The client's settings (the endpoint let through only those within the bounds), the bounds for the rest, readonly last.
          const settings = new Map([...Object.entries(request.settings), ...bounds.filter(([name]) => !(name in request.settings))])
          const assignments = [...settings].map(([name, value]) => `${name} = ${settingValue(value)}`)
          await run(session, `SET ${[...assignments, 'readonly = 1'].join(', ')}`, () => undefined)
          await run(session, `USE ${clickhouseIdentifier(request.database)}`, () => undefined)
          return (await work({
            canonical: (text) => run(session, `SELECT formatQuery(${clickhouseString(text)})`, (bytes) => Buffer.from(bytes).toString('utf8').replace(/\n$/, '')),
            explain: (sql) => run(session, `EXPLAIN AST ${sql}`, (bytes) => Buffer.from(bytes).toString('utf8')),
            tableFunctions: () => run(session, 'SELECT lower(name) FROM system.table_functions', (bytes) => new Set(Buffer.from(bytes).toString('utf8').split('\n').filter(Boolean))),
            stream: (sql, options) => stream(session, sql, options),
          })) as T
        } finally {
          open.delete(session)
          session.close()
        }
      }),
    async close() {
      closed = true
      await serial(async () => {
        for (const session of open) session.close()
      })
    },
  }
}

/**
 * Output formats whose result is its blocks' outputs end to end. The
 * engine's stream formats each block as a document of its own, so a JSON,
 * a *WithNames, a Parquet or a Values result would repeat its header and
 * footer (or miss a separator) at every block: those are answered whole.
 * test/exporters/clickhouse-read-only.test.ts checks each name here against
 * the engine, so an upgrade that changes one fails there, not in a client.
 */
export const STREAMABLE_FORMATS: ReadonlySet<string> = new Set(
  ['TabSeparated', 'TSV', 'TabSeparatedRaw', 'TSVRaw', 'CSV', 'CustomSeparated', 'JSONEachRow', 'JSONLines', 'JSONL', 'NDJSON', 'JSONStringsEachRow', 'JSONCompactEachRow', 'JSONCompactStringsEachRow', 'TSKV', 'LineAsString', 'RawBLOB', 'RowBinary', 'Native', 'BSONEachRow', 'MsgPack'].map((f) => f.toLowerCase()),
)

/**
 * The result, read block by block so it can be stopped: past `maxBytes` of
 * output, or when `signal` fires, the stream is cancelled in the engine
 * (a one-shot query would run to its end after its caller gave up). The
 * engine streams SELECTs only; SHOW, DESCRIBE, EXISTS and EXPLAIN answer
 * a few rows of metadata and run one-shot, bounded by max_execution_time,
 * as does a SELECT in a format that cannot be streamed, bounded by the
 * engine's max_result_rows and max_result_bytes as well.
 */
async function stream(session: Session, sql: string, { format, maxBytes, signal, oneShot }: StreamOptions): Promise<StreamedResult> {
  const started = performance.now()
  const chunks: Buffer[] = []
  let bytes = 0
  const whole = oneShot || !STREAMABLE_FORMATS.has(format.toLowerCase())
  let rows = 0
  const take = (raw: Uint8Array, n = 0) => {
    bytes += raw.byteLength
    rows += n
    if (bytes > maxBytes) throw sqlError(396, `Limit for result exceeded, max bytes: ${maxBytes} (server.clickhouse_http.max_result_bytes), the result is larger: ask for fewer rows or columns. (TOO_MANY_ROWS_OR_BYTES)`)
    chunks.push(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength))
  }
  try {
    if (whole) {
      const result = await session.queryAsync(sql, { format, signal })
      // chDB's `rowsRead` counts the rows of the result (the output's), not those read from storage.
      rows = result.rowsRead
      take(result.bytes())
    } else {
      const result = session.queryStream(sql, { format, signal })
      try {
        for await (const chunk of result) take(chunk.raw(), chunk.numRows)
      } finally {
        result.cancel()
      }
    }
  } catch (err) {
    if ((err as SqlError).storeCode !== undefined) throw err
    if (signal.aborted) throw sqlError(159, 'Timeout exceeded: the query ran past max_execution_time and was cancelled. (TIMEOUT_EXCEEDED)')
    throw storeError(err)
  }
  return { chunks, bytes, rows, elapsedSeconds: (performance.now() - started) / 1000 }
}
