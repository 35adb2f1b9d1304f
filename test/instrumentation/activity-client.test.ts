/**
 * The activity client against real HTTP servers and a real closed port: what
 * the app sees (log never throws, returns at once) and what the collector
 * gets (every activity once, batched, in order, through retries).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ActivityClient } from '../../instrumentation/activity-client.ts'
import { retryAfterMs } from '../../lib/backoff.ts'
import { startCaptureServer, type CaptureServer } from '../helpers/capture-server.ts'
import { closedPort } from '../helpers/ports.ts'
import { eventually } from '../helpers/stores.ts'

const open: { close(): Promise<unknown> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()))
})

async function server(): Promise<CaptureServer> {
  const s = await startCaptureServer()
  open.push(s)
  return s
}

function client(endpoint: string, options: ConstructorParameters<typeof ActivityClient>[0] = {}) {
  const errors: Error[] = []
  const c = new ActivityClient({ endpoint, retryInitialDelayMs: 20, onError: (e) => errors.push(e), ...options })
  open.push({ close: () => c.shutdown(1000) })
  return { c, errors }
}

const activity = (n: number) => ({ source: 'user' as const, action: 'test.event', entity_id: String(n) })

describe('ActivityClient', () => {
  it('sends full batches at once as one gzip JSON array, and the rest when the interval passes', async () => {
    const s = await server()
    // Behind a path prefix, as a collector behind a gateway is: the path is appended, not replaced.
    const { c } = client(`${s.url}/actline`, { maxBatchSize: 3, flushIntervalMs: 200, apiKey: 'k-123' })
    const ids = Array.from({ length: 7 }, (_, i) => c.log(activity(i)))
    await eventually('two full batches', async () => s.requests.length >= 2)
    expect(s.requests.slice(0, 2).map((r) => r.items.length)).toEqual([3, 3])
    expect(s.requests[0]!.url).toBe('/actline/v1/activities')
    expect(s.requests[0]!.headers).toMatchObject({
      'content-type': 'application/json', 'content-encoding': 'gzip', authorization: 'Bearer k-123',
    })
    await eventually('the last one after the interval', async () => s.accepted.length === 7)
    expect(s.accepted.map((a) => a.id)).toEqual(ids)
    expect(s.accepted.map((a) => a.entity_id)).toEqual(['0', '1', '2', '3', '4', '5', '6'])
    expect(c.stats).toMatchObject({ queued: 0, sent: 7, dropped: 0 })
  })

  it('drops the oldest when the queue is full, and counts them', async () => {
    const s = await server()
    const { c } = client(s.url, { maxQueueSize: 5, maxBatchSize: 100, flushIntervalMs: 60_000 })
    for (let i = 0; i < 8; i++) c.log(activity(i))
    expect(c.stats).toMatchObject({ queued: 5, dropped: 3 })
    await c.forceFlush()
    expect(s.accepted.map((a) => a.entity_id)).toEqual(['3', '4', '5', '6', '7'])
  })

  it.each([429, 503])('retries a %i after its Retry-After, with the same ids', async (status) => {
    const s = await server()
    s.script.push({ status, headers: { 'retry-after': '1' }, body: { error: 'ACT_ERR_BACKPRESSURE' } })
    const { c } = client(s.url)
    const id = c.log(activity(1))
    const started = Date.now()
    await c.forceFlush()
    expect(Date.now() - started).toBeGreaterThanOrEqual(950)
    expect(s.requests.map((r) => r.items[0]!.id)).toEqual([id, id])
    expect(s.accepted).toHaveLength(1)
    expect(c.stats).toMatchObject({ sent: 1, retries: 1 })
  })

  it('keeps retrying while nothing listens, and delivers once the collector is up', async () => {
    const port = await closedPort()
    const { c } = client(`http://127.0.0.1:${port}`, { flushIntervalMs: 10, retryMaxDelayMs: 100 })
    const id = c.log(activity(1))
    await eventually('a few failed attempts', async () => c.stats.retries >= 3)
    const s = await startCaptureServer(port)
    open.push(s)
    await eventually('delivered', async () => s.accepted.length === 1)
    expect(s.accepted[0]!.id).toBe(id)
  })

  it('reports items the collector rejected, and drops a batch it refuses outright, without throwing', async () => {
    const s = await server()
    s.script.push(
      { status: 200, body: { accepted: 1, rejected: 1, errors: [{ index: 1, path: 'action', message: 'action must be dot-separated words' }] } },
      { status: 400, body: { error: 'ACT_ERR_VALIDATION', message: 'all 1 activities were rejected' } },
    )
    const { c, errors } = client(s.url)
    c.log(activity(1))
    c.log({ source: 'user', action: 'bad action' })
    await c.forceFlush()
    c.log({ source: 'user', action: 'bad action' })
    await c.forceFlush()
    expect(c.stats).toMatchObject({ sent: 1, rejected: 2 })
    expect(errors.map((e) => e.message)).toEqual([
      'the collector rejected 1 of 2 activities: item 1 action: action must be dot-separated words',
      'dropped 1 activities: HTTP 400: all 1 activities were rejected',
    ])
  })

  it('never throws into the app, even after shutdown', async () => {
    const s = await server()
    const { c } = client(s.url)
    await c.shutdown()
    expect(() => c.log(activity(1))).not.toThrow()
    expect(c.stats.dropped).toBe(1)
  })

  it('gives up at the shutdown deadline while the collector is away', async () => {
    const port = await closedPort()
    const { c, errors } = client(`http://127.0.0.1:${port}`)
    c.log(activity(1))
    const started = Date.now()
    await c.shutdown(300)
    expect(Date.now() - started).toBeLessThan(2000)
    expect(c.stats.sent).toBe(0)
    expect(errors.at(-1)?.message ?? '').toMatch(/could not be sent|dropped/)
  })
})

describe('retryAfterMs', () => {
  it('reads seconds and HTTP dates', () => {
    expect(retryAfterMs('2')).toBe(2000)
    expect(retryAfterMs(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000)
    expect(retryAfterMs('soon')).toBeUndefined()
    expect(retryAfterMs(null)).toBeUndefined()
  })
})
