/**
 * GET /healthz: the process is up (for a liveness probe: restart if not).
 * GET /readyz: everything a sender relies on works (for a readiness probe:
 * stop sending traffic if not). 503 names what is not: a store not
 * connected yet or unreachable, an exporter whose batch keeps failing or
 * that is dead-lettering rows, ingest refusing (log full, memory, a log
 * that cannot be written). The body lists each part's state either way.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Exporter, Ingest } from '../../schemas/component.ts'
import type { BatchProcessor } from '../pipeline/batch-processor.ts'

/** One store as /readyz sees it. */
export interface StoreStatus {
  exporter: Pick<Exporter, 'name' | 'ping'>
  /** Why it is not connected yet (its start keeps failing, retried), or undefined once started. */
  starting(): string | undefined
  /** Its reader of the log, where this process runs one. */
  queue?: BatchProcessor
}

export interface HealthOptions {
  stores: readonly StoreStatus[]
  /** Present where this process takes ingest. */
  ingest?: Pick<Ingest, 'refusal'>
  /** False while starting or shutting down. */
  isAccepting(): boolean
  /** What someone should look at that does not stop a sender (a replication slot holding WAL): listed, still 200. */
  warnings?(): string[]
}

const PING_TIMEOUT_MS = 2_000
/** A dead-lettered row keeps /readyz at 503 this long: someone should look. */
export const DEAD_LETTER_ALERT_MS = 60_000

async function storeState(s: StoreStatus): Promise<string> {
  const starting = s.starting()
  if (starting !== undefined) return `not connected: ${starting}`
  const ping = await withTimeout(s.exporter.ping(), PING_TIMEOUT_MS)
  if (!ping.ok) return `unreachable: ${ping.error}`
  const health = s.queue?.health
  if (health?.failingSince !== undefined) return `failing since ${new Date(health.failingSince).toISOString()}: ${health.lastError}`
  const dead = s.queue?.stats.last_dead_letter
  if (dead && Date.now() - dead.at < DEAD_LETTER_ALERT_MS) return `dead-lettering: ${s.queue!.stats.rejected} rows refused for good so far (last: ${dead.reason})`
  return 'ok'
}

export const health: FastifyPluginAsync<HealthOptions> = async (app, { stores, ingest, isAccepting, warnings }) => {
  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const states = await Promise.all(stores.map(storeState))
    const byName = Object.fromEntries(stores.map((s, i) => [s.exporter.name, states[i]!]))
    const refusal = ingest?.refusal()
    const pipeline = ingest ? { ingest: refusal ? `refusing: ${refusal.reason}` : 'ok' } : {}
    const problems = [
      ...(isAccepting() ? [] : ['the collector is not accepting traffic']),
      ...stores.flatMap((s, i) => (states[i] === 'ok' ? [] : [`${s.exporter.name} ${states[i]}`])),
      ...(refusal ? [`ingest refusing: ${refusal.reason}`] : []),
    ]
    const warned = warnings?.() ?? []
    if (problems.length === 0) return { status: 'ready', stores: byName, ...(ingest && { pipeline }), ...(warned.length && { warnings: warned }) }
    return reply.code(503).send({
      error: 'ACT_ERR_NOT_READY',
      message: problems.join('; '),
      details: { stores: byName, ...(ingest && { pipeline }) },
    })
  })
}

function withTimeout(p: ReturnType<Exporter['ping']>, ms: number): ReturnType<Exporter['ping']> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<{ ok: false; error: string }>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${ms} ms` }), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}
