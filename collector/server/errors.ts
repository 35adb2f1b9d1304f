/**
 * The error catalogue and the one error handler: every error a client sees
 * is JSON `{ error, message, details }`, with a stable code to switch on.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ActlineError, type ErrorBody } from '../../schemas/errors.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The receiver serving the route, so Fastify's body errors can name its config section and content types. */
    receiver?: { section: string; contentTypes: readonly string[] }
    /**
     * A route whose protocol has its own error body (OTLP/HTTP answers a
     * protobuf request with google.rpc.Status): the receiver renders it, so
     * the one handler needs no codec of any protocol. Undefined: JSON.
     */
    renderError?: (error: ActlineError, request: FastifyRequest) => { type: string; body: Buffer | string } | undefined
  }
}

const REFUSALS = new Set(['ACT_ERR_STORAGE_UNAVAILABLE', 'ACT_ERR_OVERLOADED', 'ACT_ERR_NOT_READY'])

export { ActlineError, ERROR_STATUS, type ErrorBody, type ErrorCode } from '../../schemas/errors.ts'

/** Fastify's own errors, mapped into the catalogue. */
function fromFastify(err: FastifyError, request: FastifyRequest): ActlineError | undefined {
  const receiver = request.routeOptions.config?.receiver
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return err.statusCode === 413
        ? new ActlineError('ACT_ERR_BODY_TOO_LARGE', `request body is larger than ${receiver ? `${receiver.section}.max_body_bytes` : 'this route'} allows`, {})
        : new ActlineError('ACT_ERR_MALFORMED_BODY', err.message)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return new ActlineError('ACT_ERR_UNSUPPORTED_MEDIA_TYPE', `content-type '${request.headers['content-type'] ?? '(none)'}' is not supported`, {
        supported: receiver?.contentTypes ?? ['application/json'],
      })
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ActlineError('ACT_ERR_EMPTY_BODY', 'request body is empty')
    case 'Z_DATA_ERROR':
    case 'Z_BUF_ERROR':
      return new ActlineError('ACT_ERR_MALFORMED_BODY', `body is not valid for its content-encoding: ${err.message}`)
  }
  if (err.validation) {
    return new ActlineError('ACT_ERR_VALIDATION', err.message, { issues: err.validation })
  }
  return undefined
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const known = err instanceof ActlineError ? err : fromFastify(err, request)
    // Refusals (backpressure, a log that cannot be written, a store not
    // connected) are states, told once by the part in that state; a line
    // per refused request would flood the log exactly when it matters.
    if (!known || (known.statusCode >= 500 && !REFUSALS.has(known.code))) request.log.error({ err }, known ? known.message : 'unhandled error')
    // Unknown: the client gets the request id to quote, the log gets the rest.
    const error = known ?? new ActlineError('ACT_ERR_INTERNAL', 'internal error', { request_id: request.id })
    reply.code(error.statusCode).headers(error.headers)
    const own = request.routeOptions.config?.renderError?.(error, request)
    if (own) return reply.type(own.type).send(own.body)
    return reply.send(body(error))
  })

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({
      error: 'ACT_ERR_NOT_FOUND',
      message: `no route for ${request.method} ${request.url.split('?')[0]}`,
      details: {},
    } satisfies ErrorBody)
  })
}

function body(err: ActlineError): ErrorBody {
  return { error: err.code, message: err.message, details: err.details }
}
