/**
 * A read-only session on the embedded engine, for the ClickHouse HTTP
 * endpoint: a second chDB connection on the same data directory (chDB lets
 * connections to one path coexist; each has its own settings), its bounds
 * set first and then `readonly = 1`, after which the engine itself refuses
 * every write, every table function that reaches outside the store, and
 * every attempt to change a setting (code 164), whatever SQL arrives.
 * Statements run one at a time: a dashboard's panels queue here instead of
 * taking every core from ingest.
 */
import { serialQueue } from '../../lib/serial.ts'
import type { ReadOnlySql, SqlError, SqlLimits, SqlResult } from '../../schemas/component.ts'

interface ChdbError extends Error {
  clickhouseCode?: number
}

/** chDB wraps a message in its code once per layer ("Code: 73. DB::Exception: Code: 73. ..."): keep the message and its type. */
function storeError(err: unknown): SqlError {
  const e = err as ChdbError
  const code = typeof e.clickhouseCode === 'number' ? e.clickhouseCode : 1001
  let message = String(e.message ?? err)
  while (/^Code: \d+\. DB::Exception: /.test(message)) message = message.replace(/^Code: \d+\. DB::Exception: /, '')
  // Keep "(TYPE)", which clients parse; drop the version and the outer layers after it.
  const version = message.indexOf(' (version ')
  if (version !== -1) message = message.slice(0, version)
  return Object.assign(new Error(message), { name: 'SqlError', storeCode: code })
}

export async function openReadOnlySql(path: string, database: string, limits: SqlLimits, nice: number): Promise<ReadOnlySql> {
  const { Session } = await import('chdb')
  const session = new Session(path)
  const setup = [
    `USE ${database}`,
    `SET max_execution_time = ${limits.max_execution_time_s}`,
    `SET max_result_rows = ${limits.max_result_rows}`,
    `SET result_overflow_mode = 'throw'`,
    `SET max_memory_usage = ${limits.max_memory_usage_bytes}`,
    // As a ClickHouse server answers (clickhouse-local's default differs): JSON carries 64-bit integers as strings.
    'SET output_format_json_quote_64bit_integers = 1',
    // Dashboards wait for ingest, not the other way round.
    `SET os_thread_priority = ${nice}`,
    'SET readonly = 1',
  ]
  try {
    for (const statement of setup) await session.queryAsync(statement)
  } catch (err) {
    session.close()
    throw storeError(err)
  }
  const serial = serialQueue()
  return {
    use: (name) =>
      serial(async () => {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw Object.assign(new Error(`Database ${name} does not exist`), { name: 'SqlError', storeCode: 81 })
        await session.queryAsync(`USE ${name}`).catch((err: unknown) => Promise.reject(storeError(err)))
      }),
    query: (sql, { format, params, signal }) =>
      serial(async (): Promise<SqlResult> => {
        // A request that timed out while queued behind others costs nothing more.
        if (signal?.aborted) throw Object.assign(new Error('Timeout exceeded while waiting for the queries before it. (TIMEOUT_EXCEEDED)'), { name: 'SqlError', storeCode: 159 })
        try {
          const options = { format, ...(signal && { signal }) }
          const result = params && Object.keys(params).length > 0 ? await session.queryBindAsync(sql, params, options) : await session.queryAsync(sql, options)
          return { bytes: result.bytes(), rowsRead: result.rowsRead, bytesRead: result.bytesRead, elapsedSeconds: result.elapsed }
        } catch (err) {
          throw storeError(err)
        }
      }),
    close: () => serial(async () => session.close()),
  }
}
