/**
 * The register hook's request path: every request an http or https server
 * emits runs inside a RequestScope (activity-context.ts) and, when its
 * response closes, becomes one `api.*` activity through the same mapping as
 * an HTTP server span. Who called is what the handler set during the
 * request; the route is Fastify's template when Fastify serves it (its
 * `tracing:fastify.request.handler` diagnostics channel), else the path
 * without its query string.
 */
import { subscribe } from 'node:diagnostics_channel'
import http from 'node:http'
import https from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { SpanRecord } from '../../schemas/span-activity.ts'
import { randomHex } from '../../schemas/uuidv7.ts'
import { contextAttributes, currentRequest, runInRequest, type RequestScope } from '../activity-context.ts'
import type { Recorder } from './recorder.ts'

const PATCHED = Symbol.for('actline.http-server')
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/
/** Characters of a path kept as the route: a path is not a blob store either. */
const MAX_PATH = 256

/** Which requests become activities. */
export type HttpRequests = 'all' | 'writes' | 'none'
const READS = new Set(['GET', 'HEAD', 'OPTIONS'])

type Emit = (this: unknown, event: string | symbol, ...args: unknown[]) => boolean

interface Done {
  req: IncomingMessage
  scope: RequestScope
  started: number
  durationMs: number
  finished: boolean
  status: number
}

export function patchHttpServers(recorder: Recorder, which: HttpRequests): void {
  if (which === 'none') return
  const build = (d: Done) => recorder.record(requestSpan(d, recorder))
  for (const proto of [http.Server.prototype, https.Server.prototype] as { emit: Emit }[]) {
    if ((proto.emit as unknown as Record<symbol, unknown>)[PATCHED]) continue
    const emit = proto.emit
    const patched = function (this: unknown, event: string | symbol) {
      // eslint-disable-next-line prefer-rest-params
      const args = arguments as unknown as [string, ...unknown[]]
      if (event !== 'request') return emit.apply(this, args)
      const req = args[1] as IncomingMessage
      const res = args[2] as ServerResponse
      if (which === 'writes' && READS.has(req.method ?? '')) return emit.apply(this, args)
      const incoming = TRACEPARENT.exec(String(req.headers.traceparent ?? ''))
      const scope: RequestScope = { traceId: incoming?.[1] ?? randomHex(16), spanId: randomHex(8), context: {} }
      const started = Date.now()
      const t0 = performance.now()
      res.once('close', () => {
        const done: Done = { req, scope, started, durationMs: performance.now() - t0, finished: res.writableFinished, status: res.statusCode }
        recorder.defer(build, done)
      })
      return runInRequest(scope, () => emit.apply(this, args))
    } as Emit
    ;(patched as unknown as Record<symbol, unknown>)[PATCHED] = true
    proto.emit = patched
  }
  // Fastify publishes each route's handler on this channel (Fastify 5); the scope is the request's, as the handler runs inside it.
  subscribe('tracing:fastify.request.handler:start', (message) => {
    const url = (message as { route?: { url?: unknown } }).route?.url
    const scope = currentRequest()
    if (scope && typeof url === 'string') scope.route = url
  })
}

function requestSpan({ req, scope, started, durationMs, finished, status }: Done, recorder: Recorder): SpanRecord {
  const path = pathOf(req.url ?? '/')
  return {
    name: `${req.method} ${scope.route ?? path}`,
    kind: 'server',
    traceId: scope.traceId,
    spanId: scope.spanId,
    startTimeMs: started,
    durationMs,
    attributes: {
      'http.request.method': req.method,
      'http.route': scope.route ?? path,
      'url.path': path,
      // A response the client went away from never got its status out: no code, and an error.
      ...(finished && { 'http.response.status_code': status }),
      ...contextAttributes(scope.context),
    },
    status: finished ? 'unset' : 'error',
    ...(!finished && { statusMessage: 'the connection closed before the response was sent' }),
    resource: recorder.resource,
  }
}

/** The path without its query string, bounded, valid text: it may be anything a client sent. */
function pathOf(url: string): string {
  const q = url.indexOf('?')
  const path = q < 0 ? url : url.slice(0, q)
  return (path.length > MAX_PATH ? path.slice(0, MAX_PATH) : path).toWellFormed().replaceAll('\0', '')
}
