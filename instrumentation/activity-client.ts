/**
 * Ships activities from an app to the collector. The contract with the app:
 * `log()` never blocks, never throws and never grows memory without bound.
 * A bounded ring buffer takes each activity (dropping the oldest when full,
 * counted); a timer or a full batch sends it as a gzip JSON array to
 * POST /v1/activities; 429, 503, 5xx and network errors are retried with
 * backoff that honours Retry-After. One request in flight at a time: an app
 * that outpaces the collector queues, then drops, rather than piling up
 * sockets and memory.
 */
import http from 'node:http'
import https from 'node:https'
import { promisify } from 'node:util'
import { gzip as gzipCallback } from 'node:zlib'
import { context, createContextKey } from '@opentelemetry/api'
import type { ActivityInputType } from '../schemas/activity-input.ts'
import { uuidv7 } from '../schemas/uuidv7.ts'
import { stringifyArrayCooperatively } from '../schemas/cooperative.ts'
import { backoffDelay, retryAfterMs } from '../lib/backoff.ts'

const gzip = promisify(gzipCallback)

/**
 * The key @opentelemetry/core's suppressTracing() sets (createContextKey is
 * Symbol.for, so this is the same key): an instrumented http module does not
 * trace the client's own requests, without the SDK core as a dependency.
 */
const SUPPRESS_TRACING = createContextKey('OpenTelemetry SDK Context Key SUPPRESS_TRACING')

export interface ActivityClientConfig {
  /** The collector's base URL. @default 'http://127.0.0.1:4318' */
  endpoint: string
  /** Sent as `authorization: Bearer <key>` when set. */
  apiKey?: string
  /** Activities held while the collector is slow or away; the oldest are dropped beyond it. @default 10000 */
  maxQueueSize: number
  /** Activities per request. @default 512 */
  maxBatchSize: number
  /** Longest an activity waits for its batch to fill. @default 1000 */
  flushIntervalMs: number
  /** One request's time limit. @default 10000 */
  requestTimeoutMs: number
  /** First retry delay; doubles each attempt, with full jitter. @default 500 */
  retryInitialDelayMs: number
  /** Cap on a retry delay, Retry-After included. @default 30000 */
  retryMaxDelayMs: number
  /** @default true */
  gzip: boolean
}

const DEFAULTS: ActivityClientConfig = {
  endpoint: 'http://127.0.0.1:4318',
  maxQueueSize: 10_000,
  maxBatchSize: 512,
  flushIntervalMs: 1000,
  requestTimeoutMs: 10_000,
  retryInitialDelayMs: 500,
  retryMaxDelayMs: 30_000,
  gzip: true,
}

/**
 * The options with defaults filled in; a TypeError naming the option for a
 * wrong one. Checked once, where the client is made (at start): a mistake in
 * them is the app's to see, unlike anything later.
 */
export function activityClientConfig(options: Partial<ActivityClientConfig> = {}): ActivityClientConfig {
  const config = { ...DEFAULTS }
  for (const [key, value] of Object.entries(options) as [keyof ActivityClientConfig, unknown][]) {
    if (value === undefined) continue
    if (!(key in DEFAULTS) && key !== 'apiKey') throw new TypeError(`actline: unknown activity client option '${key}'`)
    if (key === 'endpoint') {
      if (typeof value !== 'string' || !URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
        throw new TypeError(`actline: endpoint must be an http(s) URL, got ${JSON.stringify(value)}`)
      }
    } else if (key === 'apiKey') {
      if (typeof value !== 'string' || value === '') throw new TypeError('actline: apiKey must be a non-empty string')
    } else if (key === 'gzip') {
      if (typeof value !== 'boolean') throw new TypeError('actline: gzip must be true or false')
    } else if (!Number.isSafeInteger(value) || (value as number) < 1) {
      throw new TypeError(`actline: ${key} must be a whole number of at least 1, got ${JSON.stringify(value)}`)
    }
    ;(config as Record<string, unknown>)[key] = value
  }
  return config
}

export type ActivityClientOptions = Partial<ActivityClientConfig> & {
  /** Told about failures (dropped batches, rejected items); never throws into the app. */
  onError?: (error: Error) => void
}

/** An activity as the client queues it: the contract's input, id already set. */
export type QueuedActivity = ActivityInputType & { id: string }

export interface ActivityClientStats {
  queued: number
  sent: number
  /** Dropped because the queue was full (the oldest go first). */
  dropped: number
  /** Refused by the collector as invalid, or dropped after a non-retryable reply. */
  rejected: number
  retries: number
}

/** Thrown into nothing: the error handed to onError, with the reply's status when there was one. */
export class ActivityExportError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message)
  }
}

export class ActivityClient {
  readonly config: ActivityClientConfig
  private readonly onError: (error: Error) => void
  private readonly ring: (QueuedActivity | undefined)[]
  private head = 0
  private size = 0
  private timer: NodeJS.Timeout | undefined
  private sending: Promise<void> | undefined
  private closed = false
  private readonly url: string
  private readonly transport: typeof http | typeof https
  private readonly agent: http.Agent
  private readonly headers: Record<string, string>
  private readonly counters = { sent: 0, dropped: 0, rejected: 0, retries: 0 }
  /** Wakes a retry wait early on flush or shutdown. */
  private wake: (() => void) | undefined
  private stopping = false
  /** Set when shutdown's time is up: an in-flight retry loop gives up instead of outliving it. */
  private abandoned = false
  /** Activities in the batch being delivered (taken off the ring, not yet answered). */
  private inflight = 0
  private scheduled = false

  constructor(options: ActivityClientOptions = {}) {
    const { onError, ...config } = options
    this.config = activityClientConfig(config)
    this.onError = onError ?? ((err) => process.emitWarning(err.message, 'ActlineActivityClient'))
    this.ring = new Array(this.config.maxQueueSize)
    // Appended to the endpoint's path, as OTLP exporters do: a collector behind a path prefix works.
    const base = this.config.endpoint.endsWith('/') ? this.config.endpoint : `${this.config.endpoint}/`
    const url = new URL('v1/activities', base)
    this.url = url.toString()
    this.transport = url.protocol === 'https:' ? https : http
    // One socket: one request is ever in flight, and it stays open between batches.
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: 1 })
    this.headers = {
      'content-type': 'application/json',
      ...(this.config.gzip && { 'content-encoding': 'gzip' }),
      ...(this.config.apiKey && { authorization: `Bearer ${this.config.apiKey}` }),
    }
  }

  /**
   * Queue one activity; returns its id. The id is minted here (set on the
   * object given, which the client now owns: copying it would double the
   * call's cost), once, so a retried request carries the same ids and the
   * collector stores each activity once.
   */
  log(activity: ActivityInputType): string {
    activity.id ??= uuidv7()
    const queued = activity as QueuedActivity
    if (this.closed) {
      this.counters.dropped++
      return queued.id
    }
    const capacity = this.ring.length
    if (this.size === capacity) {
      // Full: overwrite the oldest. Recent activity is what an operator looks for.
      this.ring[this.head] = queued
      this.head = (this.head + 1) % capacity
      this.counters.dropped++
    } else {
      this.ring[(this.head + this.size) % capacity] = queued
      this.size++
    }
    if (this.size >= this.config.maxBatchSize) this.kick()
    else this.timer ??= setTimeout(() => this.kick(), this.config.flushIntervalMs).unref()
    return queued.id
  }

  get stats(): ActivityClientStats {
    return { queued: this.size, ...this.counters }
  }

  private readonly producers = new Set<() => void>()

  /**
   * `produce` is called (synchronously) at the start of every flush and
   * shutdown: a producer holding activities not yet logged (the register
   * hook's batch) hands them over first, so a flush sends them too.
   */
  addProducer(produce: () => void): void {
    this.producers.add(produce)
  }

  private takeFromProducers(): void {
    for (const produce of this.producers) {
      try {
        produce()
      } catch {
        // a producer's failure costs its activities, never the flush
      }
    }
  }

  /** Resolves once everything queued before the call is sent or given up, or at the timeout. */
  async forceFlush(timeoutMs = 30_000): Promise<void> {
    this.takeFromProducers()
    const deadline = Date.now() + timeoutMs
    this.stopping = true
    try {
      while ((this.size > 0 || this.sending) && Date.now() < deadline) {
        this.wake?.()
        await Promise.race([this.send(), delay(Math.max(0, deadline - Date.now()))])
      }
    } finally {
      this.stopping = this.closed
    }
  }

  /** Stops taking activities, sends what is queued (within the timeout), releases the timer and sockets. */
  async shutdown(timeoutMs = 10_000): Promise<void> {
    if (this.closed) return
    // Before closing: what the producers hand over after it would be dropped.
    this.takeFromProducers()
    this.closed = true
    await this.forceFlush(timeoutMs)
    this.abandoned = true
    this.wake?.()
    clearTimeout(this.timer)
    this.timer = undefined
    this.agent.destroy()
    const unsent = this.size + this.inflight
    if (unsent > 0) {
      this.counters.dropped += unsent
      this.onError(new ActivityExportError(`shutdown: ${unsent} activities could not be sent in ${timeoutMs} ms and were dropped`))
      this.ring.fill(undefined)
      this.size = 0
    }
  }

  private kick(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    // Off the caller's stack: log() returns before any serialization happens.
    // Once: a burst of log() calls past a full batch must not schedule one send each.
    if (this.sending || this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      void this.send()
    })
  }

  /** Sends batches until the queue is empty; one loop at a time. */
  private send(): Promise<void> {
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined
      if (this.size > 0 && !this.closed) this.timer ??= setTimeout(() => this.kick(), this.config.flushIntervalMs).unref()
    })
    return this.sending
  }

  private async drain(): Promise<void> {
    while (this.size > 0) {
      const batch = this.take(this.config.maxBatchSize)
      this.inflight = batch.length
      try {
        await this.deliver(batch)
      } finally {
        this.inflight = 0
      }
      // Below a full batch, wait for the timer: it batches the trickle.
      if (this.size < this.config.maxBatchSize && !this.stopping) return
    }
  }

  private take(n: number): QueuedActivity[] {
    const count = Math.min(n, this.size)
    const batch = new Array<QueuedActivity>(count)
    for (let i = 0; i < count; i++) {
      batch[i] = this.ring[this.head]!
      this.ring[this.head] = undefined
      this.head = (this.head + 1) % this.ring.length
    }
    this.size -= count
    return batch
  }

  private async deliver(batch: QueuedActivity[]): Promise<void> {
    // In slices: a whole batch at once would hold the app's event loop for a millisecond or more.
    const json = await stringifyArrayCooperatively(batch, 64)
    // Level 1: JSON of similar records still shrinks ~25x, for a third of level 6's CPU.
    const body = this.config.gzip ? await gzip(json, { level: 1 }) : Buffer.from(json)
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.post(body)
      if (outcome.kind === 'done') {
        this.counters.sent += batch.length - outcome.rejected
        if (outcome.rejected > 0) {
          this.counters.rejected += outcome.rejected
          this.onError(new ActivityExportError(`the collector rejected ${outcome.rejected} of ${batch.length} activities: ${outcome.message}`, 200))
        }
        return
      }
      if (outcome.kind === 'fatal') {
        this.counters.rejected += batch.length
        this.onError(new ActivityExportError(`dropped ${batch.length} activities: ${outcome.message}`, outcome.status))
        return
      }
      // Shutdown has counted this batch as dropped already.
      if (this.abandoned) return
      this.counters.retries++
      const backoff = backoffDelay({ initial_interval_ms: this.config.retryInitialDelayMs, max_interval_ms: this.config.retryMaxDelayMs, multiplier: 2 }, attempt)
      const wait = Math.min(this.config.retryMaxDelayMs, Math.max(backoff, outcome.retryAfterMs ?? 0))
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait)
        // While flushing (at exit, say) a retry keeps the process alive, up to the flush's deadline;
        // otherwise the client never holds the app open.
        if (!this.stopping) t.unref()
        this.wake = () => {
          // A flush does not skip a server's Retry-After, only our own backoff.
          if (outcome.retryAfterMs === undefined) {
            clearTimeout(t)
            resolve()
          }
        }
      })
      this.wake = undefined
    }
  }

  private async post(body: Buffer): Promise<Outcome> {
    let reply: { status: number; retryAfter: string | undefined; text: string }
    try {
      // Suppressed so an instrumented http module does not trace (and ship) the shipping itself.
      reply = await context.with(context.active().setValue(SUPPRESS_TRACING, true), () => this.request(body))
    } catch {
      return { kind: 'retry' }
    }
    const { status, retryAfter, text } = reply
    if (status >= 200 && status < 300) return { kind: 'done', rejected: rejectedCount(text), message: errorSummary(text) }
    if (status === 429 || status === 408 || status >= 500) return { kind: 'retry', retryAfterMs: retryAfterMs(retryAfter ?? null) }
    return { kind: 'fatal', status, message: `HTTP ${status}: ${errorSummary(text)}` }
  }

  /**
   * node:http with a keep-alive agent rather than fetch: fetch (undici) costs
   * ~0.9 ms more CPU per request, ~1.8 us per activity at 512 a batch, on
   * the app's own thread (bench:overhead).
   */
  private request(body: Buffer): Promise<{ status: number; retryAfter: string | undefined; text: string }> {
    return new Promise((resolve, reject) => {
      const req = this.transport.request(
        this.url,
        { method: 'POST', agent: this.agent, headers: { ...this.headers, 'content-length': body.length }, timeout: this.config.requestTimeoutMs },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const retryAfter = res.headers['retry-after']
            resolve({ status: res.statusCode ?? 0, retryAfter, text: Buffer.concat(chunks).toString() })
          })
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new Error(`no reply in ${this.config.requestTimeoutMs} ms`)))
      req.on('error', reject)
      req.end(body)
    })
  }
}

type Outcome =
  | { kind: 'done'; rejected: number; message: string }
  | { kind: 'retry'; retryAfterMs?: number }
  | { kind: 'fatal'; status: number; message: string }

function rejectedCount(text: string): number {
  try {
    const n = (JSON.parse(text) as { rejected?: unknown }).rejected
    return typeof n === 'number' ? n : 0
  } catch {
    return 0
  }
}

function errorSummary(text: string): string {
  try {
    const body = JSON.parse(text) as { message?: string; errors?: { index: number; path: string; message: string }[] }
    const first = body.errors?.[0]
    return first ? `item ${first.index} ${first.path}: ${first.message}` : (body.message ?? '')
  } catch {
    return text.slice(0, 200)
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}
