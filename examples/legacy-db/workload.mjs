// The legacy database's write workload: the product's transactions (sign-ups,
// logins, tokens, projects, investments, subscriptions, payments,
// distributions and their approvals, orders), each a transaction that sets
// app.user_id as trigger-audited apps do, from several connections at once.
//
//   node examples/legacy-db/workload.mjs --db URL --setup        # schema.sql, then reference data
//   node examples/legacy-db/workload.mjs --db URL --seconds 10   # the workload; tx/s at the end
//
// With the SDK on, the app records its own writes instead of the triggers:
//   ACTLINE_ENDPOINT=http://127.0.0.1:4318 OTEL_SERVICE_NAME=legacy-app \
//     node --import @actline/instrumentation/register examples/legacy-db/workload.mjs --db URL
// each INSERT/UPDATE/DELETE then reaches the collector as a db.* activity of
// its table, attributed to the transaction's user (withActivityContext).
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import pg from 'pg'

const { values: o } = parseArgs({
  options: {
    db: { type: 'string' },
    setup: { type: 'boolean' },
    seconds: { type: 'string', default: '10' },
    clients: { type: 'string', default: '4' },
    seed: { type: 'string', default: '1' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
})
if (o.help || !o.db) {
  console.log('usage: node examples/legacy-db/workload.mjs --db URL [--setup] [--seconds 10] [--clients 4] [--seed 1] [--json]')
  process.exit(o.help ? 0 : 2)
}

/** Reference data the transactions pick from. */
const N = { organizations: 20, users: 500, plans: 3, products: 50, investors: 200, projects: 40, subscriptions: 60, distributions: 40, tokens: 300 }

if (o.setup) {
  const c = new pg.Client({ connectionString: o.db })
  await c.connect()
  await c.query(readFileSync(new URL('./schema.sql', import.meta.url), 'utf8'))
  await c.query(`SET app.user_id = 'setup'`)
  await c.query(`INSERT INTO organizations (name) SELECT 'org ' || i FROM generate_series(1, ${N.organizations}) i`)
  await c.query(`INSERT INTO users (email, name) SELECT 'user' || i || '@example.com', 'User ' || i FROM generate_series(1, ${N.users}) i`)
  await c.query(`INSERT INTO user_profiles (user_id, locale) SELECT id, 'en' FROM users`)
  await c.query(`INSERT INTO memberships (organization_id, user_id, role) SELECT 1 + id % ${N.organizations}, id, 'member' FROM users`)
  await c.query(`INSERT INTO api_tokens (user_id, token_hash, scope) SELECT 1 + i % ${N.users}, md5(i::text), 'read' FROM generate_series(1, ${N.tokens}) i`)
  await c.query(`INSERT INTO plans (name, price_cents) VALUES ('free', 0), ('team', 4900), ('business', 19900)`)
  await c.query(`INSERT INTO products (name, stock) SELECT 'product ' || i, 1000000000 FROM generate_series(1, ${N.products}) i`)
  await c.query(`INSERT INTO investors (user_id) SELECT id FROM users WHERE id <= ${N.investors}`)
  await c.query(`INSERT INTO projects (organization_id, name) SELECT 1 + i % ${N.organizations}, 'Project ' || i FROM generate_series(1, ${N.projects}) i`)
  await c.query(`INSERT INTO subscriptions (organization_id, plan_id) SELECT 1 + i % ${N.organizations}, 1 + i % ${N.plans} FROM generate_series(1, ${N.subscriptions}) i`)
  await c.query(`INSERT INTO distributions (project_id, amount_cents) SELECT 1 + i % ${N.projects}, 100000 FROM generate_series(1, ${N.distributions}) i`)
  await c.end()
  if (!o.json) console.log(`set up: schema.sql (18 tables, 64 triggers) and reference data`)
  process.exit(0)
}

// The SDK, when the register hook loaded it: each transaction's writes are attributed to its user.
const sdk = process.env.ACTLINE_ENDPOINT ? await import('@actline/instrumentation') : undefined
const asUser = (user, fn) => (sdk ? sdk.withActivityContext({ actorId: user }, fn) : fn())

let state = Number(o.seed) >>> 0 || 1
/** xorshift32: the same seed, the same transactions. */
const rand = (n) => {
  state ^= state << 13
  state ^= state >>> 17
  state ^= state << 5
  return 1 + ((state >>> 0) % n)
}

/** [weight, transaction]: what the product does, in about these proportions. */
const TRANSACTIONS = [
  [10, 'signup', async (c) => {
    const { rows } = await c.query(`INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id`, [`new${Date.now()}${rand(1e9)}@example.com`, 'New user'])
    await c.query(`INSERT INTO user_profiles (user_id, locale) VALUES ($1, 'en')`, [rows[0].id])
    await c.query(`INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'member')`, [rand(N.organizations), rows[0].id])
    await c.query(`INSERT INTO sessions (user_id, ip) VALUES ($1, '10.0.0.1')`, [rows[0].id])
  }],
  [20, 'login', async (c, user) => {
    await c.query(`INSERT INTO sessions (user_id, ip) VALUES ($1, '10.0.0.2')`, [user])
    await c.query(`UPDATE users SET last_login_at = now() WHERE id = $1`, [user])
  }],
  [10, 'profile', async (c, user) => {
    await c.query(`UPDATE user_profiles SET bio = $1 WHERE user_id = $2`, [`bio ${rand(1000)}`, user])
  }],
  [8, 'token', async (c, user) => {
    await c.query(`INSERT INTO api_tokens (user_id, token_hash, scope) VALUES ($1, md5(random()::text), 'write')`, [user])
    await c.query(`UPDATE api_tokens SET revoked_at = now() WHERE id = $1`, [rand(N.tokens)])
  }],
  [5, 'project', async (c, user) => {
    const { rows } = await c.query(`INSERT INTO projects (organization_id, name) VALUES ($1, $2) RETURNING id`, [rand(N.organizations), `Project ${rand(1e9)}`])
    await c.query(`INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')`, [rows[0].id, user])
  }],
  [12, 'invest', async (c) => {
    await c.query(`INSERT INTO investments (investor_id, project_id, amount_cents) VALUES ($1, $2, $3)`, [rand(N.investors), rand(N.projects), 1000 * rand(100)])
    await c.query(`UPDATE investors SET kyc_status = 'verified' WHERE id = $1`, [rand(N.investors)])
  }],
  [5, 'subscribe', async (c) => {
    const { rows } = await c.query(`INSERT INTO subscriptions (organization_id, plan_id) VALUES ($1, $2) RETURNING id`, [rand(N.organizations), rand(N.plans)])
    await c.query(`INSERT INTO invoices (subscription_id, amount_cents) VALUES ($1, 4900)`, [rows[0].id])
  }],
  [10, 'pay', async (c) => {
    const { rows } = await c.query(`INSERT INTO invoices (subscription_id, amount_cents) VALUES ($1, 4900) RETURNING id`, [rand(N.subscriptions)])
    await c.query(`INSERT INTO payments (invoice_id, amount_cents) VALUES ($1, 4900)`, [rows[0].id])
  }],
  [8, 'distribute', async (c, user) => {
    const { rows } = await c.query(`INSERT INTO distributions (project_id, amount_cents) VALUES ($1, 50000) RETURNING id`, [rand(N.projects)])
    const approval = await c.query(`INSERT INTO approvals (distribution_id, requested_by) VALUES ($1, $2) RETURNING id`, [rows[0].id, user])
    await c.query(`UPDATE approvals SET approver_id = $1, status = 'approved' WHERE id = $2`, [(user % N.users) + 1, approval.rows[0].id])
    await c.query(`UPDATE distributions SET status = 'approved' WHERE id = $1`, [rows[0].id])
  }],
  [12, 'order', async (c, user) => {
    await c.query(`INSERT INTO orders (user_id, product_id, quantity) VALUES ($1, $2, 1)`, [user, rand(N.products)])
  }],
]
const total = TRANSACTIONS.reduce((s, [w]) => s + w, 0)
const pick = () => {
  let r = rand(total)
  for (const t of TRANSACTIONS) if ((r -= t[0]) <= 0) return t
  return TRANSACTIONS[0]
}

const seconds = Number(o.seconds)
const pool = new pg.Pool({ connectionString: o.db, max: Number(o.clients) })
const counts = Object.fromEntries(TRANSACTIONS.map(([, name]) => [name, 0]))
let done = 0
let failed = 0
const started = performance.now()
const deadline = started + seconds * 1000
await Promise.all(
  Array.from({ length: Number(o.clients) }, async () => {
    const c = await pool.connect()
    try {
      while (performance.now() < deadline) {
        const [, name, run] = pick()
        const user = rand(N.users)
        await asUser(`u-${user}`, async () => {
          try {
            await c.query('BEGIN')
            await c.query(`SELECT set_config('app.user_id', $1, true)`, [`u-${user}`])
            await run(c, user)
            await c.query('COMMIT')
            counts[name]++
            done++
          } catch (err) {
            await c.query('ROLLBACK').catch(() => {})
            if (++failed === 1) console.error(`workload: ${name} failed: ${err.message}`)
          }
        })
      }
    } finally {
      c.release()
    }
  }),
)
const elapsed = (performance.now() - started) / 1000
await pool.end()
let activities
if (sdk) {
  const client = sdk.getActivityClient()
  await client.forceFlush()
  activities = client.stats
}
const result = { transactions: done, failed, seconds: Math.round(elapsed * 100) / 100, tx_per_s: Math.round(done / elapsed), by_transaction: counts, ...(activities && { activities }) }
console.log(o.json ? JSON.stringify(result) : `${done.toLocaleString('en-US')} transactions in ${result.seconds} s: ${result.tx_per_s.toLocaleString('en-US')} tx/s${failed ? `, ${failed} failed` : ''}${activities ? `; activities sent ${activities.sent}, dropped ${activities.dropped}` : ''}`)
