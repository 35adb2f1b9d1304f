/**
 * A preParsing hook that undoes Content-Encoding, shared by the receivers.
 * Fastify's body limit then applies to the decoded bytes, which is the point:
 * a small gzip body can expand a thousandfold.
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
