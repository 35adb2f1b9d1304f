/**
 * ClickHouse's HTTP interface for the embedded store, on its own listener
 * (`server.clickhouse_http`), so Grafana's ClickHouse datasource,
 * `@clickhouse/client` with a `url`, and curl reach it with a host and a
 * port, as they would a server. It only reads: statements run on a session
 * the engine holds at `readonly = 1` (exporters/clickhouse/read-only.ts),
 * bounded in time, rows and memory. Followed: ClickHouse's HTTP interface
 * (docs/interfaces/http) for parameters, headers and the error shape.
 */
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import { gzip as gzipCallback } from 'node:zlib'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger, ReadOnlySql, SqlError } from '../../../schemas/component.ts'
import { grants, keyring, type AuthConfig } from '../../../api/auth.ts'
import type { ClickHouseHttpConfig } from './config.ts'
import { ClickHouseError, bindParams, checkStatement, httpStatus } from './statement.ts'

const gzip = promisify(gzipCallback)

/** URL parameters of the protocol itself, not settings. */
const PROTOCOL = new Set(['query', 'database', 'default_format', 'query_id', 'user', 'password', 'session_id', 'session_timeout', 'session_check', 'compress', 'decompress'])

/** Settings that shape the HTTP exchange only: taken (compression) or harmless to ignore. */
const HTTP_ONLY = new Set([
  'enable_http_compression', 'http_zlib_compression_level', 'wait_end_of_query', 'send_progress_in_http_headers',
  'http_headers_progress_interval_ms', 'http_response_buffer_size', 'buffer_size', 'cancel_http_readonly_queries_on_client_close',
  'output_format_json_quote_64bit_integers',
])

const TYPES: [RegExp, string][] = [
  [/^JSON/i, 'application/json; charset=UTF-8'],
  [/^(TabSeparated|TSV)/i, 'text/tab-separated-values; charset=UTF-8'],
  [/^CSV/i, 'text/csv; charset=UTF-8; header=absent'],
]

export interface ClickHouseHttpOptions {
  config: ClickHouseHttpConfig
  auth: AuthConfig
  logger: Logger
  /** The read-only session, once the store is up; rejects with why not while it is starting. */
  session(): Promise<ReadOnlySql>
}

export interface ClickHouseHttp {
  /** Listen; resolves with the URL, or undefined when the port cannot be had (said once in the log). */
  start(): Promise<string | undefined>
  close(): Promise<void>
}

export function createClickHouseHttp({ config, auth, logger, session }: ClickHouseHttpOptions): ClickHouseHttp {
  const keys = keyring(auth)
  // param_ values travel in the URL: let it be as long as a query may be (ClickHouse's http_max_uri_size is 1 MiB too).
  const app: FastifyInstance = Fastify({ bodyLimit: config.max_query_bytes, requestTimeout: 60_000, forceCloseConnections: 'idle', http: { maxHeaderSize: config.max_query_bytes } })
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))

  app.setErrorHandler((err: Error & { statusCode?: number; storeCode?: number; code?: string | number }, request, reply) => {
    const tooLarge = err.statusCode === 413
    const code = err instanceof ClickHouseError ? err.code : typeof err.storeCode === 'number' ? err.storeCode : tooLarge ? 229 : 1002
    const message =
      err instanceof ClickHouseError || typeof err.storeCode === 'number'
        ? err.message
        : tooLarge
          ? `Query is too large: more than server.clickhouse_http.max_query_bytes (${config.max_query_bytes}). (QUERY_IS_TOO_LARGE)`
          : `${err.message}. (UNKNOWN_EXCEPTION)`
    if (code === 1002) request.log.error({ err }, 'clickhouse_http: unexpected error')
    return reply
      .code(httpStatus(code))
      .header('x-clickhouse-exception-code', String(code))
      .type('text/plain; charset=UTF-8')
      .send(`Code: ${code}. DB::Exception: ${message}\n`)
  })

  const ok = async (_request: FastifyRequest, reply: FastifyReply) => reply.type('text/plain; charset=UTF-8').send('Ok.\n')
  app.get('/ping', ok)
  app.route({ method: ['GET', 'POST'], url: '/', handler: (request, reply) => handle(request, reply) })

  async function handle(request: FastifyRequest, reply: FastifyReply) {
    const url = new URL(request.url, 'http://localhost')
    const search = url.searchParams
    const body = Buffer.isBuffer(request.body) ? request.body.toString('utf8') : ''
    const text = [search.get('query') ?? '', body].filter((t) => t.trim() !== '').join('\n')
    if (request.method === 'GET' && text === '') return ok(request, reply)
    authenticate(request, search)

    const params: Record<string, string> = {}
    let timeoutS = config.max_execution_time_s
    for (const [name, value] of search) {
      if (name.startsWith('param_')) params[name.slice(6)] = value
      else if (PROTOCOL.has(name) || HTTP_ONLY.has(name)) continue
      // Stricter than asked is kept; anything else would lift the bound.
      else if (name === 'readonly' && value !== '0') continue
      else if (name === 'max_execution_time' && /^\d+$/.test(value)) timeoutS = Math.min(timeoutS, Number(value) || timeoutS)
      else throw new ClickHouseError(164, `Cannot modify '${name}' setting in readonly mode. (READONLY)`)
    }
    const statement = checkStatement(text)
    const format = statement.format ?? search.get('default_format') ?? 'TabSeparated'
    const sql = await session()
    const database = search.get('database') ?? request.headers['x-clickhouse-database']
    if (typeof database === 'string' && database !== '') await sql.use(database)
    const abort = AbortSignal.timeout(timeoutS * 1000 + 1000)
    const result = await sql.query(bindParams(statement.sql, params), { format, signal: abort }).catch((err: SqlError) => {
      throw abort.aborted ? new ClickHouseError(159, `Timeout exceeded: elapsed ${timeoutS} seconds. (TIMEOUT_EXCEEDED)`) : err
    })
    const queryId = search.get('query_id') ?? randomUUID()
    let bytes: Buffer = Buffer.from(result.bytes.buffer, result.bytes.byteOffset, result.bytes.byteLength)
    reply
      .header('x-clickhouse-query-id', queryId)
      .header('x-clickhouse-format', format)
      .header('x-clickhouse-timezone', 'UTC')
      .header('x-clickhouse-server-display-name', 'actline')
      .header(
        'x-clickhouse-summary',
        JSON.stringify({
          read_rows: String(result.rowsRead),
          read_bytes: String(result.bytesRead),
          written_rows: '0',
          written_bytes: '0',
          total_rows_to_read: String(result.rowsRead),
          result_rows: '0',
          result_bytes: String(bytes.length),
          elapsed_ns: String(Math.round(result.elapsedSeconds * 1e9)),
        }),
      )
      .type(TYPES.find(([pattern]) => pattern.test(format))?.[1] ?? 'application/octet-stream')
    if (search.get('enable_http_compression') === '1' && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) {
      bytes = await gzip(bytes)
      reply.header('content-encoding', 'gzip')
    }
    return reply.send(bytes)
  }

  /** With API keys, the password (basic auth, X-ClickHouse-Key or ?password=) must be a key that may read. */
  function authenticate(request: FastifyRequest, search: URLSearchParams): void {
    if (keys.size === 0) return
    const basic = /^Basic\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1]
    const [basicUser, basicPassword] = basic ? splitOnce(Buffer.from(basic, 'base64').toString('utf8')) : []
    const user = basicUser ?? header(request, 'x-clickhouse-user') ?? search.get('user') ?? 'default'
    const key = basicPassword ?? header(request, 'x-clickhouse-key') ?? search.get('password') ?? ''
    const principal = key === '' ? undefined : keys.lookup(key)
    if (!principal || !grants(principal, 'read')) {
      logger.warn({ address: request.ip, user }, 'clickhouse_http: authentication failed')
      throw new ClickHouseError(516, `${user}: Authentication failed: password is incorrect, or there is no user with such name; the password is an API key with the read scope. (AUTHENTICATION_FAILED)`)
    }
  }

  return {
    async start() {
      try {
        await app.listen({ host: config.host, port: config.port })
      } catch (err) {
        logger.warn({ err: (err as Error).message, host: config.host, port: config.port }, `clickhouse_http: cannot listen on ${config.host}:${config.port}; the ClickHouse endpoint is off (set server.clickhouse_http.port, or enabled: false)`)
        return undefined
      }
      const address = app.server.address()
      const port = typeof address === 'object' && address ? address.port : config.port
      const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
      logger.info({ clickhouse_http: url }, `ClickHouse HTTP interface for the embedded store on ${url} (read-only)`)
      return url
    },
    close: () => app.close(),
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function splitOnce(text: string): [string, string] {
  const i = text.indexOf(':')
  return i === -1 ? [text, ''] : [text.slice(0, i), text.slice(i + 1)]
}
