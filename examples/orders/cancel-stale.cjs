// A CommonJS batch job beside the service: cancels orders left unpaid, then
// exits on its own. Run under the same hook,
//   node --import @actline/instrumentation/register examples/orders/cancel-stale.cjs
// its UPDATE becomes a db.update activity like the service's, and what is
// still queued is sent before the process exits.
const pg = require('pg')

async function main() {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' })
  const { rowCount } = await pool.query(
    "UPDATE orders SET status = 'canceled', updated_at = now() WHERE status = 'new' AND updated_at < now() - $1::interval",
    [process.env.STALE_AFTER ?? '1 day'],
  )
  console.log(JSON.stringify({ canceled: rowCount }))
  await pool.end()
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
