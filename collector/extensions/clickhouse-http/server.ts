/**
 * ClickHouse's HTTP interface for the embedded store, on its own listener
 * (`server.clickhouse_http`), so Grafana's ClickHouse datasource,
 * `@clickhouse/client` with a `url`, and curl reach it with a host and a
 * port, as they would a server. It only reads: each request runs on a
 * session of its own that the engine holds at `readonly = 1`
 * (exporters/clickhouse/read-only.ts), bounded in time, rows, output bytes
 * and memory, and only once policy.ts has found in the engine's parse of it
 * nothing that reaches outside the store. Followed: ClickHouse's HTTP
 * interface (docs/interfaces/http) for parameters, headers and the error shape.
 */
import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import { createGzip } from 'node:zlib'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger, ReadOnlySession, ReadOnlySql } from '../../../schemas/component.ts'
import { failureLimiter, grants, keyring, type AuthConfig } from '../../../api/auth.ts'
import { browserRefusal, header, type BrowserPolicy } from '../../../api/browser-guard.ts'
import type { ClickHouseHttpConfig } from './config.ts'
import { checkReach, formatClause, readableDatabase } from './policy.ts'
import { readParameters } from './settings.ts'
import { ClickHouseError, bindParams, httpStatus } from './statement.ts'

const TYPES: [RegExp, string][] = [
  [/^JSON/i, 'application/json; charset=UTF-8'],
  [/^(TabSeparated|TSV)/i, 'text/tab-separated-values; charset=UTF-8'],
  [/^CSVWithNames/i, 'text/csv; charset=UTF-8; header=present'],
  [/^CSV/i, 'text/csv; charset=UTF-8; header=absent'],
]

/** Content types a web page can POST from any site without asking first (CORS "simple" requests). */
const SIMPLE_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']

export interface ClickHouseHttpOptions {
  config: ClickHouseHttpConfig
  auth: AuthConfig
  /** Which browsers' requests the listener takes (server.allowed_origins, allowed_hosts). */
  browser: BrowserPolicy
  logger: Logger
  /** The read-only sessions, once the store is up; rejects with why not while it is starting. */
  session(): Promise<ReadOnlySql>
  /** True while the collector is over its memory limit: no new query then. */
  overMemory?: () => boolean
}

export interface ClickHouseHttp {
  /** Listen; resolves with the URL, or undefined when the port cannot be had (said once in the log). */
  start(): Promise<string | undefined>
  close(): Promise<void>
}

export function createClickHouseHttp({ config, auth, browser, logger, session, overMemory }: ClickHouseHttpOptions): ClickHouseHttp {
  const keys = keyring(auth)
  const failures = failureLimiter(auth)
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
    if (err instanceof ClickHouseError && err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter))
    return reply
      .code(err instanceof ClickHouseError && err.status !== undefined ? err.status : httpStatus(code))
      .header('x-clickhouse-exception-code', String(code))
      .type('text/plain; charset=UTF-8')
      .send(`Code: ${code}. DB::Exception: ${message}\n`)
  })

  // First: a page of another site gets nothing from this listener.
  app.addHook('onRequest', async (request) => {
    const refusal = browserRefusal(request, browser)
    if (refusal !== undefined) throw new ClickHouseError(497, `${refusal}. (ACCESS_DENIED)`)
  })

  const ok = async (_request: FastifyRequest, reply: FastifyReply) => reply.type('text/plain; charset=UTF-8').send('Ok.\n')
  app.get('/ping', ok)
  app.route({ method: ['GET', 'POST'], url: '/', handler: (request, reply) => handle(request, reply) })

  async function handle(request: FastifyRequest, reply: FastifyReply) {
    const url = new URL(request.url, 'http://localhost')
    const search = url.searchParams
    const fields = formFields(request)
    const body = fields ? (fields.query ?? '') : Buffer.isBuffer(request.body) ? request.body.toString('utf8') : ''
    const text = [search.get('query') ?? '', body].filter((t) => t.trim() !== '').join('\n')
    if (request.method === 'GET' && text === '') return ok(request, reply)
    authenticate(request, search)
    if (request.method === 'POST' && !credentialsInHeaders(request) && isSimpleType(request.headers['content-type'])) {
      throw new ClickHouseError(
        497,
        `a POST with Content-Type '${request.headers['content-type'] ?? '(none)'}' can come from any web page, so it needs its credentials in a header: curl -u default: (or -u name:key), X-ClickHouse-User, or Content-Type: application/octet-stream. (ACCESS_DENIED)`,
      )
    }
    if (search.get('compress') === '1') throw new ClickHouseError(48, "compress=1 (ClickHouse's own block compression) is not implemented here: use enable_http_compression=1 with Accept-Encoding: gzip. (NOT_IMPLEMENTED)")
    if (overMemory?.()) throw new ClickHouseError(241, 'the collector is over its memory limit (pipeline.memory_limiter); retry shortly. (MEMORY_LIMIT_EXCEEDED)', 5)
    const parameters = readParameters(search, config)
    const queryId = search.get('query_id') ?? randomUUID()
    // It goes back in a header: printable ASCII only, as a header can carry.
    if (!/^[\x20-\x7e]{1,256}$/.test(queryId)) throw new ClickHouseError(36, 'query_id must be 1-256 printable ASCII characters. (BAD_ARGUMENTS)')
    const sql = await session()
    const database = search.get('database') || header(request, 'x-clickhouse-database') || sql.database
    if (!readableDatabase(database, sql.database)) throw new ClickHouseError(497, `database ${database.slice(0, 128)} is out of reach: this endpoint reads ${sql.database}, system and information_schema. (ACCESS_DENIED)`)
    const signal = AbortSignal.timeout(parameters.timeoutS * 1000 + 1000)
    const result = await sql.request({ database, settings: parameters.settings, signal }, async (s) => {
      const canonical = await s.canonical(text)
      const bound = bindParams(canonical, parameters.params)
      const { select } = checkReach(await s.explain(bound), { store: sql.database, current: database, engineTableFunctions: await tableFunctions(s) })
      const format = formatClause(canonical) ?? search.get('default_format') ?? 'TabSeparated'
      return { format, ...(await s.stream(bound, { format, maxBytes: parameters.maxBytes, signal, oneShot: !select })) }
    })
    const summary = JSON.stringify({
      written_rows: '0',
      written_bytes: '0',
      result_rows: String(result.rows),
      result_bytes: String(result.bytes),
      elapsed_ns: String(Math.round(result.elapsedSeconds * 1e9)),
    })
    reply
      .header('x-clickhouse-query-id', queryId)
      .header('x-clickhouse-format', result.format)
      .header('x-clickhouse-timezone', 'UTC')
      .header('x-clickhouse-server-display-name', 'actline')
      .header('x-clickhouse-summary', summary)
      .type(TYPES.find(([pattern]) => pattern.test(result.format))?.[1] ?? 'application/octet-stream')
    if (search.get('send_progress_in_http_headers') === '1') reply.header('x-clickhouse-progress', summary)
    // The blocks as they came, never joined into a second copy of the result.
    const stream = Readable.from(result.chunks, { objectMode: false })
    if (search.get('enable_http_compression') === '1' && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) {
      reply.header('content-encoding', 'gzip')
      return reply.send(stream.pipe(createGzip()))
    }
    reply.header('content-length', String(result.bytes))
    return reply.send(stream)
  }

  let engineTableFunctions: ReadonlySet<string> | undefined
  async function tableFunctions(s: ReadOnlySession): Promise<ReadonlySet<string>> {
    engineTableFunctions ??= await s.tableFunctions()
    return engineTableFunctions
  }

  /**
   * With API keys, the password (basic auth, X-ClickHouse-Key or ?password=)
   * must be a key that may read; failures are limited per address as on the
   * main port (auth.max_failures in auth.failure_window_ms).
   */
  function authenticate(request: FastifyRequest, search: URLSearchParams): void {
    if (keys.size === 0) return
    const retryAfter = failures.blockedFor(request.ip)
    if (retryAfter !== undefined) throw new ClickHouseError(516, `too many failed authentications from this address; retry in ${retryAfter} s with a valid key. (AUTHENTICATION_FAILED)`, retryAfter, 429)
    const basic = /^Basic\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1]
    const [basicUser, basicPassword] = basic ? splitOnce(Buffer.from(basic, 'base64').toString('utf8')) : []
    const user = basicUser ?? header(request, 'x-clickhouse-user') ?? search.get('user') ?? 'default'
    const key = basicPassword ?? header(request, 'x-clickhouse-key') ?? search.get('password') ?? ''
    const principal = key === '' ? undefined : keys.lookup(key)
    if (!principal || !grants(principal, 'read')) {
      const count = failures.fail(request.ip)
      if (count <= auth.max_failures) logger.warn({ address: request.ip, user: user.slice(0, 128), failures: count }, 'clickhouse_http: authentication failed')
      throw new ClickHouseError(516, `${user.slice(0, 128)}: Authentication failed: password is incorrect, or there is no user with such name; the password is an API key with the read scope. (AUTHENTICATION_FAILED)`)
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

/** Credentials a browser cannot attach to a request to another site without asking first. */
function credentialsInHeaders(request: FastifyRequest): boolean {
  return request.headers.authorization !== undefined || request.headers['x-clickhouse-user'] !== undefined || request.headers['x-clickhouse-key'] !== undefined
}

function isSimpleType(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  return type === '' || SIMPLE_TYPES.includes(type)
}

/**
 * The fields of a multipart/form-data body (how the `clickhouse` npm client
 * sends a long query with usePost): `query` is the query. A file part is
 * an external table, which this endpoint does not take.
 */
function formFields(request: FastifyRequest): Record<string, string> | undefined {
  const type = request.headers['content-type'] ?? ''
  const boundary = /^multipart\/form-data\s*;.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type)
  if (!boundary || !Buffer.isBuffer(request.body)) return undefined
  const delimiter = `--${boundary[1] ?? boundary[2]}`
  const fields: Record<string, string> = {}
  for (const part of request.body.toString('utf8').split(delimiter).slice(1)) {
    if (part.startsWith('--')) break
    const end = part.indexOf('\r\n\r\n')
    if (end === -1) throw new ClickHouseError(62, 'a multipart/form-data part without headers. (SYNTAX_ERROR)')
    const headers = part.slice(0, end)
    const name = /content-disposition:[^\r\n]*\bname="([^"]*)"/i.exec(headers)?.[1]
    if (name === undefined) throw new ClickHouseError(62, 'a multipart/form-data part without a name. (SYNTAX_ERROR)')
    if (/\bfilename=/i.test(headers)) throw new ClickHouseError(48, 'external tables (file parts of a multipart body) are not taken by this endpoint. (NOT_IMPLEMENTED)')
    fields[name] = part.slice(end + 4).replace(/\r\n$/, '')
  }
  return fields
}

function splitOnce(text: string): [string, string] {
  const i = text.indexOf(':')
  return i === -1 ? [text, ''] : [text.slice(0, i), text.slice(i + 1)]
}
