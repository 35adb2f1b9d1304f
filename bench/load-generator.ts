/**
 * Load generator, run as its own process so its CPU is not the collector's
 * event loop. Posts 500-event NDJSON batches either at a fixed rate (open
 * loop: latency is measured from the moment each request was due, so a
 * stalled collector cannot hide its stall, i.e. no coordinated omission) or
 * as fast as `concurrency` connections allow (closed loop: the ceiling).
 *
 * Input: one JSON argument (see Options). Output: one JSON line on stdout;
 * progress on stderr.
 */
import http from 'node:http'

export interface Options {
  url: string
  mode: 'rate' | 'max'
  /** Requests per second, for mode 'rate'. */
  rate: number
  /** Connections (mode 'max') or the cap on requests in flight (mode 'rate'). */
  concurrency: number
  durationMs: number
  batchSize: number
  /** Reshapes bench:ingest's mix (bench:scale): attributes per event, padded size, share routed to the audit trail. */
  shape?: Shape
}

export interface Shape {
  /** Attributes per event instead of the mix's two. */
  attributes?: number
  /** Each event's JSON padded (in details) to about this many bytes. */
  eventBytes?: number
  /** Share of events the default audit route takes (source user), 0-1; the rest are system events it skips. */
  auditShare?: number
}

export interface LoadResult {
  mode: Options['mode']
  requests: number
  statuses: Record<string, number>
  accepted: number
  elapsedMs: number
  latencyMs: { p50: number; p90: number; p99: number; max: number }
}

const SOURCES = ['user', 'user', 'user', 'system', 'system', 'system', 'system', 'integration', 'integration', 'database', 'scheduled'] as const
const ACTIONS = ['user.login', 'user.logout', 'invoice.create', 'invoice.paid', 'db.insert', 'db.update', 'api.request', 'job.run', 'file.upload', 'search.query']
const CATEGORIES = ['authentication', 'billing', 'database', 'api', 'scheduled_job', 'file', 'search', 'data_modification', 'other']

/** A realistic mix: ~30% user actions (audited), the rest machine events, some warnings. */
/** The events of bench:ingest, one JSON text each. */
export function makeEvents(batchSize: number, seed: number, shape: Shape = {}): string[] {
  return makeBody(batchSize, seed, shape).split('\n')
}

function makeBody(batchSize: number, seed: number, shape: Shape = {}): string {
  const lines: string[] = []
  const audited = shape.auditShare
  for (let i = 0; i < batchSize; i++) {
    const n = seed * batchSize + i
    const event: Record<string, unknown> = {
      source: audited === undefined ? SOURCES[n % SOURCES.length] : (n * 37) % 100 < audited * 100 ? 'user' : 'system',
      action: ACTIONS[n % ACTIONS.length],
      category: audited === undefined ? CATEGORIES[n % CATEGORIES.length] : 'api',
      severity: audited === undefined && n % 50 === 0 ? 'warning' : 'info',
      status: n % 20 === 0 ? 'failure' : 'success',
      actor_id: `user-${n % 5000}`,
      tenant_id: `tenant-${n % 20}`,
      entity_type: 'invoice',
      entity_id: `inv-${n}`,
      service: 'billing-api',
      duration_ms: (n % 997) / 10,
      details: { path: `/api/v1/invoices/${n}`, method: 'POST' },
      attributes: shape.attributes === undefined
        ? { region: n % 2 ? 'eu-west-1' : 'us-east-1', version: '1.4.2' }
        : Object.fromEntries(Array.from({ length: shape.attributes }, (_, k) => [`attr_${k}`, `value-${(n + k) % 50}`])),
    }
    let line = JSON.stringify(event)
    // Smaller than the mix: drop optional fields until it fits.
    for (const key of ['details', 'attributes', 'entity_type', 'service', 'duration_ms', 'entity_id']) {
      if (shape.eventBytes === undefined || line.length <= shape.eventBytes) break
      delete event[key]
      line = JSON.stringify(event)
    }
    if (shape.eventBytes !== undefined && line.length < shape.eventBytes && event.details) {
      ;(event.details as Record<string, unknown>).note = 'x'.repeat(shape.eventBytes - line.length - 10)
      line = JSON.stringify(event)
    }
    lines.push(line)
  }
  return lines.join('\n')
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

export async function runLoad(o: Options): Promise<LoadResult> {
  const bodies = Array.from({ length: 64 }, (_, i) => Buffer.from(makeBody(o.batchSize, i, o.shape)))
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency })
  const target = new URL('/v1/activities', o.url)
  const latencies: number[] = []
  const statuses: Record<string, number> = {}
  let accepted = 0
  let requests = 0
  let inFlight = 0

  /** Resolves with the Retry-After delay in ms when the collector asked to back off. */
  const send = (body: Buffer, dueAt: number) =>
    new Promise<number>((resolve) => {
      inFlight++
      const req = http.request(target, { method: 'POST', agent, headers: { 'content-type': 'application/x-ndjson', 'content-length': body.length } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          latencies.push(performance.now() - dueAt)
          statuses[res.statusCode!] = (statuses[res.statusCode!] ?? 0) + 1
          if (res.statusCode === 200) accepted += (JSON.parse(Buffer.concat(chunks).toString()) as { accepted: number }).accepted
          inFlight--
          resolve(res.statusCode === 429 ? Number(res.headers['retry-after'] ?? 1) * 1000 : 0)
        })
      })
      req.on('error', () => {
        statuses.error = (statuses.error ?? 0) + 1
        inFlight--
        resolve(0)
      })
      req.end(body)
    })

  const started = performance.now()
  const end = started + o.durationMs
  const progress = setInterval(() => {
    const s = (performance.now() - started) / 1000
    process.stderr.write(`  [${o.mode}] ${s.toFixed(0)}s: ${requests} requests, ${Math.round(accepted / s)} accepted events/s, in flight ${inFlight}\n`)
  }, 5_000)

  if (o.mode === 'max') {
    await Promise.all(Array.from({ length: o.concurrency }, async () => {
      while (performance.now() < end) {
        const body = bodies[requests++ % bodies.length]!
        // Like a well-behaved client (and actline's SDK): honour Retry-After.
        const backoff = await send(body, performance.now())
        if (backoff > 0) await new Promise((r) => setTimeout(r, Math.min(backoff, end - performance.now())))
      }
    }))
  } else {
    const interval = 1000 / o.rate
    const pending: Promise<number>[] = []
    for (let i = 0; ; i++) {
      const dueAt = started + i * interval
      if (dueAt >= end) break
      const wait = dueAt - performance.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      if (inFlight >= o.concurrency) {
        statuses.skipped = (statuses.skipped ?? 0) + 1
        continue
      }
      pending.push(send(bodies[requests++ % bodies.length]!, dueAt))
    }
    await Promise.all(pending)
  }
  clearInterval(progress)
  agent.destroy()
  const elapsedMs = performance.now() - started
  latencies.sort((a, b) => a - b)
  const r2 = (x: number) => Math.round(x * 100) / 100
  return {
    mode: o.mode,
    requests,
    statuses,
    accepted,
    elapsedMs: r2(elapsedMs),
    latencyMs: { p50: r2(percentile(latencies, 50)), p90: r2(percentile(latencies, 90)), p99: r2(percentile(latencies, 99)), max: r2(latencies.at(-1) ?? NaN) },
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const options = JSON.parse(process.argv[2]!) as Options
  runLoad(options).then((r) => process.stdout.write(JSON.stringify(r) + '\n'))
}
