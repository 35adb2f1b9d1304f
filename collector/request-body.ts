/**
 * Request-body handling shared by the receivers: a preParsing hook that
 * undoes Content-Encoding (Fastify's body limit then applies to the decoded
 * bytes, which is the point: a small gzip body can expand a thousandfold),
 * and JSON parsing with the catalogue's error.
 */
import { createGunzip, createInflate } from 'node:zlib'
import type { Transform } from 'node:stream'
import type { preParsingAsyncHookHandler } from 'fastify'
import { ActlineError } from './errors.ts'

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

/** JSON.parse, failing as a 400 that says where the JSON broke. */
export function parseJsonBody(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ActlineError('ACT_ERR_MALFORMED_BODY', `body is not valid JSON: ${(err as Error).message}`)
  }
}
