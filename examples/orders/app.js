// An orders service with no audit triggers: started with
//   node --import @actline/instrumentation/register app.js
// its INSERT/UPDATE/DELETE statements reach the collector as database
// activities, its requests as api activities, all sharing the request's trace.
//
// Environment: DATABASE_URL (PostgreSQL), PORT (0 picks a free one),
// ACTLINE_ENDPOINT (the collector), OTEL_SERVICE_NAME.
import Fastify from 'fastify'
import pg from 'pg'
import { logUserAction, withActivityContext } from '@actline/instrumentation'

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', max: 4 })
await pool.query(`CREATE TABLE IF NOT EXISTS orders (
  id serial PRIMARY KEY,
  customer text NOT NULL,
  total numeric(12, 2) NOT NULL,
  status text NOT NULL DEFAULT 'new',
  updated_at timestamptz NOT NULL DEFAULT now()
)`)

const app = Fastify()

// The caller's identity, for every activity and span under the request.
// (A real service takes it from its authentication, not a bare header.)
const asCaller = (request, fn) => withActivityContext({ actorId: request.headers['x-user-id'] }, fn)

app.post('/orders', (request, reply) =>
  asCaller(request, async () => {
    const { customer, total } = request.body
    const { rows } = await pool.query('INSERT INTO orders (customer, total) VALUES ($1, $2) RETURNING id', [customer, total])
    logUserAction('order.created', { entityType: 'order', entityId: rows[0].id, category: 'billing', details: { total } })
    return reply.code(201).send({ id: rows[0].id })
  }),
)

app.patch('/orders/:id', (request, reply) =>
  asCaller(request, async () => {
    const { rowCount } = await pool.query('UPDATE orders SET status = $1, updated_at = now() WHERE id = $2', [request.body.status, request.params.id])
    return rowCount ? { id: Number(request.params.id), status: request.body.status } : reply.code(404).send({ error: 'not found' })
  }),
)

app.delete('/orders/:id', (request, reply) =>
  asCaller(request, async () => {
    await pool.query('DELETE FROM orders WHERE id = $1', [request.params.id])
    return reply.code(204).send()
  }),
)

app.get('/orders/:id', async (request, reply) => {
  const { rows } = await pool.query('SELECT id, customer, total, status FROM orders WHERE id = $1', [request.params.id])
  return rows[0] ?? reply.code(404).send({ error: 'not found' })
})

const url = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
console.log(JSON.stringify({ msg: 'orders service listening', url }))

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, async () => {
    await app.close()
    await pool.end()
    process.exit(0)
  })
}
