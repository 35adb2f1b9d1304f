/**
 * GET /healthz: the process is up (for a liveness probe: restart if not).
 * GET /readyz: every store answers (for a readiness probe: stop sending
 * traffic if not); each store's state is in the body either way.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Exporter } from '../schemas/component.ts'

export interface HealthOptions {
  exporters: readonly Exporter[]
  /** False while starting or shutting down. */
  isAccepting(): boolean
}

const PING_TIMEOUT_MS = 2_000

export const health: FastifyPluginAsync<HealthOptions> = async (app, { exporters, isAccepting }) => {
  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const results = await Promise.all(exporters.map((e) => withTimeout(e.ping(), PING_TIMEOUT_MS)))
    const stores = Object.fromEntries(exporters.map((e, i) => [e.name, results[i]!.ok ? 'ok' : results[i]!.error]))
    const ready = isAccepting() && results.every((r) => r.ok)
    if (ready) return { status: 'ready', stores }
    return reply.code(503).send({
      error: 'ACT_ERR_NOT_READY',
      message: isAccepting() ? 'a store is unreachable' : 'the collector is not accepting traffic',
      details: { stores },
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
