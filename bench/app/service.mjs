// The orders service bench:app measures (bench/app.ts): Fastify + pg, each
// POST a transaction (INSERT ... RETURNING, two item INSERTs, an account
// UPDATE), each GET one join. The same code under every variant:
//   VARIANT=none       no auditing
//   VARIANT=trigger    the database's audit triggers; the app tells them who with set_config
//   VARIANT=hook       node --import @actline/instrumentation/register
//   VARIANT=otel       the app traces with the OpenTelemetry SDK (--import ./otel.mjs)
//   VARIANT=otel-asp   the same, plus ActivitySpanProcessor
// Environment: DATABASE_URL, PORT (0 picks one).
const variant = process.env.VARIANT ?? 'none'
// Imported after the --import hooks ran, whichever variant: the same modules load either way.
const { default: Fastify } = await import('fastify')
const { default: pg } = await import('pg')
const sdk = variant === 'hook' || variant === 'ctx' || variant.startsWith('otel-asp') ? await import('@actline/instrumentation') : undefined
const asCaller = sdk ? (user, fn) => sdk.withActivityContext({ actorId: user }, fn) : (_user, fn) => fn()

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 8 })
const app = Fastify()

app.post('/orders', (request, reply) =>
  asCaller(request.headers['x-user-id'], async () => {
    const { account, customer, items } = request.body
    const total = items.reduce((sum, i) => sum + i.qty * i.price, 0)
    const client = await pool.connect()
    try {
      await client.query('BEGIN')
      if (variant === 'trigger') await client.query("SELECT set_config('app.user', $1, true)", [request.headers['x-user-id']])
      const { rows } = await client.query('INSERT INTO orders (account_id, customer, total, status) VALUES ($1, $2, $3, $4) RETURNING id', [account, customer, total, 'new'])
      for (const item of items) {
        await client.query('INSERT INTO order_items (order_id, sku, qty, price) VALUES ($1, $2, $3, $4)', [rows[0].id, item.sku, item.qty, item.price])
      }
      await client.query('UPDATE accounts SET balance = balance - $1, updated_at = now() WHERE id = $2', [total, account])
      await client.query('COMMIT')
      return reply.code(201).send({ id: rows[0].id, total })
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }),
)

app.get('/orders/:id', async (request, reply) => {
  const { rows } = await pool.query(
    `SELECT o.id, o.customer, o.total, o.status, json_agg(json_build_object('sku', i.sku, 'qty', i.qty)) AS items
       FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.id = $1 GROUP BY o.id`,
    [request.params.id],
  )
  return rows[0] ?? reply.code(404).send({ error: 'not found' })
})

const url = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
console.log(JSON.stringify({ msg: 'listening', url }))
process.once('SIGTERM', async () => {
  await app.close()
  await pool.end()
  if (sdk) await sdk.getActivityClient().shutdown(5000)
  process.exit(0)
})
