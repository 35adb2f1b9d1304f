/**
 * POST /v1/activities: one JSON object, a JSON array, or NDJSON, optionally
 * gzip- or deflate-compressed. Every item is validated on its own: the reply
 * counts accepted and rejected items, and a bad item never drops good ones.
 */
import { isUtf8 } from 'node:buffer'
import type { FastifyPluginAsync } from 'fastify'
import type { ActivityReceiverConfig } from './config.ts'
import { parseActivity, type Activity } from '../../../schemas/activity.ts'
import { decodeContentEncoding, parseJsonBody } from '../request-body.ts'
import { ActlineError } from '../../../schemas/errors.ts'
import { refuseWhenFull, store } from '../admission.ts'
import type { ReceiverOptions } from '../receiver-type.ts'

export interface ItemError {
  index: number
  path: string
  message: string
}

/** What the content-type parsers hand the route: items, plus the NDJSON lines that were not JSON. */
interface ParsedBody {
  items: unknown[]
  unparsable: Map<number, string>
}

const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl']

const replySchema = {
  type: 'object',
  properties: {
    accepted: { type: 'integer' },
    rejected: { type: 'integer' },
    ids: { type: 'array', items: { type: 'string' } },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: { index: { type: 'integer' }, path: { type: 'string' }, message: { type: 'string' } },
      },
    },
    errors_truncated: { type: 'boolean' },
  },
} as const

export const activityReceiver: FastifyPluginAsync<ReceiverOptions<ActivityReceiverConfig>> = async (app, { config, ingest, stats }) => {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.max_body_bytes }, async (_req: unknown, body: Buffer) => {
    const value = parseJsonBody(body)
    return { items: Array.isArray(value) ? value : [value], unparsable: new Map() } satisfies ParsedBody
  })
  app.addContentTypeParser(NDJSON_TYPES, { parseAs: 'buffer', bodyLimit: config.max_body_bytes }, (_req, body, done) => {
    done(null, parseNdjson(body as Buffer))
  })

  app.addHook('preParsing', decodeContentEncoding)

  app.post<{ Body: ParsedBody }>(
    '/v1/activities',
    {
      bodyLimit: config.max_body_bytes,
      schema: { response: { 200: replySchema } },
      config: { scope: 'ingest', receiver: { section: 'receivers.activity', contentTypes: ['application/json', ...NDJSON_TYPES] } },
      onRequest: refuseWhenFull(ingest, stats, 'ACT_ERR_BACKPRESSURE'),
    },
    async (request, reply) => {
      const { items, unparsable } = request.body ?? { items: [], unparsable: new Map() }
      if (items.length === 0) throw new ActlineError('ACT_ERR_EMPTY_BODY', 'request holds no activities')
      if (items.length > config.max_items) {
        throw new ActlineError('ACT_ERR_BODY_TOO_LARGE', `request holds ${items.length} activities, at most ${config.max_items}`, {
          items: items.length,
          max_items: config.max_items,
        })
      }
      const receivedAt = Date.now()
      const accepted: Activity[] = []
      const errors: ItemError[] = []
      let rejected = 0
      let issueCount = 0
      for (let index = 0; index < items.length; index++) {
        const unparsed = unparsable.get(index)
        const result = unparsed === undefined ? parseActivity(items[index], receivedAt) : undefined
        if (result?.ok) {
          accepted.push(result.activity)
          continue
        }
        rejected++
        const issues = result ? result.issues : [{ path: '', message: unparsed! }]
        issueCount += issues.length
        for (const issue of issues) if (errors.length < config.max_reported_errors) errors.push({ index, ...issue })
      }
      stats.rejected += rejected
      if (accepted.length === 0) {
        throw new ActlineError('ACT_ERR_VALIDATION', `all ${rejected} activities were rejected`, {
          accepted: 0,
          rejected,
          errors,
          ...(issueCount > errors.length && { errors_truncated: true }),
        })
      }
      await store(ingest, accepted, request.log)
      stats.accepted += accepted.length
      reply.code(200)
      return {
        accepted: accepted.length,
        rejected,
        ids: accepted.map((a) => a.id),
        errors,
        ...(issueCount > errors.length && { errors_truncated: true }),
      }
    },
  )
}

/**
 * Blank lines are skipped; a line that is not JSON, or not UTF-8, becomes
 * that item's error. Lines are cut on the newline byte, which UTF-8 never
 * uses inside a character, so one bad line never spoils its neighbours.
 */
function parseNdjson(body: Buffer): ParsedBody {
  const items: unknown[] = []
  const unparsable = new Map<number, string>()
  const bad = (why: string) => {
    unparsable.set(items.length, why)
    items.push(undefined)
  }
  let line = 0
  for (const text of lines(body)) {
    line++
    if (text === undefined) {
      bad(`line ${line} is not valid UTF-8`)
      continue
    }
    const raw = text.trim()
    if (raw === '') continue
    try {
      items.push(JSON.parse(raw))
    } catch (err) {
      bad(`line ${line} is not valid JSON: ${(err as Error).message}`)
    }
  }
  return { items, unparsable }
}

/** Each line's text, or undefined for a line that is not UTF-8. */
function* lines(body: Buffer): Generator<string | undefined> {
  // Nearly every body is UTF-8 throughout: check and decode it once, not line by line.
  if (isUtf8(body)) {
    const text = body.toString('utf8')
    for (let start = 0; start <= text.length; ) {
      const end = text.indexOf('\n', start)
      yield text.slice(start, end === -1 ? text.length : end)
      start = end === -1 ? text.length + 1 : end + 1
    }
    return
  }
  for (let start = 0; start <= body.length; ) {
    const end = body.indexOf(0x0a, start)
    const bytes = body.subarray(start, end === -1 ? body.length : end)
    yield isUtf8(bytes) ? bytes.toString('utf8') : undefined
    start = end === -1 ? body.length + 1 : end + 1
  }
}
