/**
 * `npm run bench:audit-chain`: what the hash chain costs (issue 17, part 6),
 * side by side in one run. Per target, two databases: one as the exporter
 * makes it (migration 3, chained writes: heads locked FOR UPDATE, SHA-256 per
 * row in this process, four more columns and an index), one with the chain's
 * columns, index and heads dropped again, written by the insert as it was
 * before the chain (bench/unchained-insert.ts); both writers are called
 * directly on a held connection. Batches alternate between the
 * two; each batch's wall time gives rows per second, this process's CPU
 * (PGlite runs in it, in a worker) its µs per row; medians over the batches.
 * bench:ingest's event mix, 20 tenants.
 *
 * Then `verify` over the chained database: rows per second reading and
 * checking every chain, best of three.
 *
 *   npm run bench:audit-chain            # BENCH_BATCH=10000 BENCH_BATCHES=10; PG_URL adds the server
 */
import { parseActivity, type Activity } from '../schemas/activity.ts'
import { PostgresExporterConfig } from '../exporters/postgres/config.ts'
import { createPostgresExporter } from '../exporters/postgres/exporter.ts'
import { verifyAuditLog } from '../schemas/audit-chain-store.ts'
import { createLogger } from '../collector/server/logger.ts'
import { createScratchDatabase, tempDir } from '../test/helpers/stores.ts'
import { makeEvents } from './load-generator.ts'
import { median } from './query-scenarios.ts'
import { plainCopyInsert, plainJsonInsert } from './unchained-insert.ts'
import { copyInsert } from '../exporters/postgres/copy.ts'
import { jsonInsert } from '../exporters/postgres/json-insert.ts'

const BATCH = Number(process.env.BENCH_BATCH ?? 10_000)
const BATCHES = Number(process.env.BENCH_BATCHES ?? 10)
const logger = createLogger('warn')

type Exporter = ReturnType<typeof createPostgresExporter>

/** Back to migration 2's audit_log: no chain columns, index or heads. */
const UNCHAIN = [
  'DROP INDEX IF EXISTS audit_log_chain_idx',
  'DROP INDEX IF EXISTS audit_log_unchained_idx',
  'DROP INDEX IF EXISTS audit_log_retention_idx',
  'ALTER TABLE audit_log DROP COLUMN chain, DROP COLUMN chain_seq, DROP COLUMN prev_hash, DROP COLUMN row_hash',
  'DROP TABLE audit_chain_heads',
]

function events(n: number): Activity[] {
  const out: Activity[] = []
  for (let seed = 0; out.length < n; seed++) {
    for (const text of makeEvents(1000, seed)) {
      const r = parseActivity(JSON.parse(text), Date.now())
      if (r.ok) out.push(r.activity)
    }
  }
  return out.slice(0, n)
}

async function open(url?: string): Promise<{ exporter: Exporter; close(): Promise<void> }> {
  const dir = tempDir('actline-bench-chain-')
  const exporter = createPostgresExporter({ ...PostgresExporterConfig.parse(url ? { url } : {}), path: dir.path }, logger)
  await exporter.start()
  return { exporter, close: async () => (await exporter.shutdown(), dir.remove()) }
}

interface Side {
  rowsPerSecond: number[]
  cpuUsPerRow: number[]
}

async function measure(name: string, url: { chained?: string; plain?: string }, activities: Activity[]): Promise<Exporter> {
  const chained = await open(url.chained)
  const plain = await open(url.plain)
  for (const sql of UNCHAIN) await plain.exporter.pool().query(sql)
  const server = Boolean(url.chained)
  const sides: Record<'chained' | 'unchained', Side> = { chained: { rowsPerSecond: [], cpuUsPerRow: [] }, unchained: { rowsPerSecond: [], cpuUsPerRow: [] } }
  // Both writers on a held connection, called the same way: what differs is the chain alone (export() adds
  // its partition check, pool checkout and outcome classification, the same with or without the chain).
  const plainClient = await plain.exporter.pool().connect()
  const chainedClient = await chained.exporter.pool().connect()
  console.log(`\n${name}: ${BATCHES} batches of ${BATCH.toLocaleString('en-US')} rows each way, alternating`)
  try {
    for (let b = 0; b < BATCHES; b++) {
      const batch = activities.slice(b * BATCH, (b + 1) * BATCH)
      // Which goes first alternates too: neither always meets a warmer cache.
      const order = b % 2 ? (['unchained', 'chained'] as const) : (['chained', 'unchained'] as const)
      for (const side of order) {
        const cpu = process.cpuUsage()
        const t0 = performance.now()
        if (side === 'chained') await (server ? copyInsert(chainedClient, batch) : jsonInsert(chainedClient, batch))
        else await (server ? plainCopyInsert(plainClient, batch) : plainJsonInsert(plainClient, batch))
        const seconds = (performance.now() - t0) / 1000
        const used = process.cpuUsage(cpu)
        sides[side].rowsPerSecond.push(BATCH / seconds)
        sides[side].cpuUsPerRow.push((used.user + used.system) / BATCH)
      }
      process.stderr.write(`  batch ${b + 1}/${BATCHES}: chained ${Math.round(sides.chained.rowsPerSecond.at(-1)!)} rows/s, unchained ${Math.round(sides.unchained.rowsPerSecond.at(-1)!)} rows/s\n`)
    }
  } finally {
    plainClient.release()
    chainedClient.release()
  }
  for (const [side, db] of [['chained', chained], ['unchained', plain]] as const) {
    const { rows } = await db.exporter.pool().query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log')
    if (rows[0]!.n !== BATCH * BATCHES) throw new Error(`${side}: audit_log holds ${rows[0]!.n} rows, not ${BATCH * BATCHES}`)
  }
  const c = sides.chained
  const u = sides.unchained
  const rate = median(c.rowsPerSecond) / median(u.rowsPerSecond)
  console.log(`  without the chain  ${Math.round(median(u.rowsPerSecond)).toLocaleString('en-US').padStart(8)} rows/s   ${median(u.cpuUsPerRow).toFixed(1).padStart(5)} µs CPU/row (this process${server ? '' : ', PGlite included'})`)
  console.log(`  with the chain     ${Math.round(median(c.rowsPerSecond)).toLocaleString('en-US').padStart(8)} rows/s   ${median(c.cpuUsPerRow).toFixed(1).padStart(5)} µs CPU/row`)
  console.log(`  the chain costs    ${((1 - rate) * 100).toFixed(1)}% of the rows per second (target < 15%); ${((median(c.cpuUsPerRow) / median(u.cpuUsPerRow) - 1) * 100).toFixed(1)}% more CPU here`)
  await plain.close()
  await verifySpeed(chained.exporter)
  await chained.close()
  return chained.exporter
}

async function verifySpeed(exporter: Exporter): Promise<void> {
  const rates: number[] = []
  for (let i = 0; i < 3; i++) {
    const report = await verifyAuditLog(exporter.reader())
    if (!report.ok || report.rows !== BATCH * BATCHES) throw new Error(`verify: ${JSON.stringify({ ok: report.ok, rows: report.rows })}`)
    rates.push(report.rows / report.seconds)
    process.stderr.write(`  verify ${i + 1}/3: ${report.chains.length} chains, ${report.rows.toLocaleString('en-US')} rows in ${report.seconds.toFixed(2)} s\n`)
  }
  console.log(`  verify             ${Math.round(Math.max(...rates)).toLocaleString('en-US').padStart(8)} rows/s (best of 3; median ${Math.round(median(rates)).toLocaleString('en-US')}; target >= 200,000)`)
}

async function main() {
  const activities = events(BATCH * BATCHES)
  console.log(`bench:audit-chain: ${activities.length.toLocaleString('en-US')} events, ${new Set(activities.map((a) => a.tenant_id)).size} tenants`)
  await measure('PGlite (embedded, the exporter\'s json_to_recordset insert)', {}, activities)
  if (process.env.PG_URL) {
    const a = await createScratchDatabase()
    const b = await createScratchDatabase()
    try {
      await measure('The PostgreSQL server (the exporter\'s COPY insert)', { chained: a.url, plain: b.url }, activities)
    } finally {
      await a.drop()
      await b.drop()
    }
  }
}

await main()
