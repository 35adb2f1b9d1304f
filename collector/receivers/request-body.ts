/**
 * Request-body handling shared by the receivers: a preParsing hook that
 * undoes Content-Encoding (Fastify's body limit then applies to the decoded
 * bytes, which is the point: a small gzip body can expand a thousandfold),
 * and JSON parsing with the catalogue's error.
 */
import { isUtf8 } from 'node:buffer'
import { createGunzip, createInflate } from 'node:zlib'
import type { Transform } from 'node:stream'
import type { preParsingAsyncHookHandler } from 'fastify'
import { ActlineError } from '../../schemas/errors.ts'

export const decodeContentEncoding: preParsingAsyncHookHandler = async (request, _reply, payload) => {
  const encoding = (request.headers['content-encoding'] ?? 'identity').toLowerCase().trim()
  if (encoding === 'identity') return payload
  let decoder: Transform
  if (encoding === 'gzip' || encoding === 'x-gzip') decoder = createGunzip()
  else if (encoding === 'deflate') decoder = createInflate()
  else {
    throw new ActlineError('ACT_ERR_UNSUPPORTED_ENCODING', `content-encoding '${encoding}' is not supported`, {
      supported: ['gzip', 'deflate', 'identity'],
    })
  }
  // Fastify checks the limit against decoded bytes and content-length
  // against this count of encoded ones.
  const counted = decoder as Transform & { receivedEncodedLength: number }
  counted.receivedEncodedLength = 0
  payload.on('data', (chunk: Buffer) => (counted.receivedEncodedLength += chunk.length))
  payload.on('error', (err) => decoder.destroy(err))
  return payload.pipe(decoder)
}

/**
 * JSON.parse of a body, failing as a 400 that says where the JSON broke.
 * JSON text is UTF-8 (RFC 8259): invalid bytes are refused rather than
 * decoded to U+FFFD, which would store something nobody sent.
 */
export function parseJsonBody(body: Buffer): unknown {
  if (!isUtf8(body)) throw new ActlineError('ACT_ERR_MALFORMED_BODY', 'body is not valid UTF-8: JSON text must be UTF-8 (RFC 8259)')
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new ActlineError('ACT_ERR_MALFORMED_BODY', `body is not valid JSON: ${(err as Error).message}`)
  }
}
