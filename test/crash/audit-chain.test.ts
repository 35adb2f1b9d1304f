/**
 * Two collectors writing one audit database (the real PostgreSQL server,
 * PG_URL), under load for the same tenants, each killed with SIGKILL in
 * turn and restarted: afterwards every acknowledged event is in audit_log
 * once and every tenant has one hash chain, whole and gapless, whose head
 * is its last row. The chains' heads are locked per batch, so the two never
 * fork a chain; a batch killed mid-transaction takes its sequence numbers
 * with it; a batch replayed after a kill leaves the chain as it was.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { verifyAuditLog } from '../../schemas/audit-chain-store.ts'
import { backlog, killChildren, startCollectorProcess, writeConfig, type CollectorProcess } from '../helpers/process.ts'
import { createScratchDatabase, eventually, PG_URL, tempDir } from '../helpers/stores.ts'
import { postLoad } from '../helpers/load.ts'

const ROUNDS = Number(process.env.CRASH_KILLS ?? 8)
const TENANTS = ['acme', 'globex', 'initech']
const dir = tempDir('actline-chain-crash-')
let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined
afterAll(async () => {
  await killChildren()
  await scratch?.drop()
  dir.remove()
})

/** The shared tenants, paced: one serialized audit writer at a time per tenant is the point, not its top speed. */
const load = (url: string, acked: Set<string>) =>
  postLoad(url, acked, { connections: 2, perRequest: 40, pauseMs: 10, event: (id, i) => ({ id, action: 'chain.crash', source: 'user', tenant_id: TENANTS[i % TENANTS.length] }) })

describe.skipIf(!PG_URL)('two collectors on one audit database, killed in turn', () => {
  it('keep one whole, gapless chain per tenant and every acknowledged event once', async () => {
    scratch = await createScratchDatabase()
    // One file each: writeConfig names a file by the millisecond.
    const config = (name: string) =>
      writeConfig(mkdirSync(join(dir.path, `config-${name}`), { recursive: true })!, [
        `data_dir: ${dir.path}/${name}`,
        'server: { port: 0, log_level: info }',
        // The audit trail is what is under test; each collector's own ClickHouse would only share two cores.
        `exporters: { clickhouse: { enabled: false }, file: { enabled: true }, postgres: { url: "${scratch!.url}" } }`,
        'pipeline: { batch: { send_batch_size: 1000, timeout_ms: 30 } }',
      ].join('\n'))
    const files = [config('a'), config('b')]
    const acked = new Set<string>()
    const running: (CollectorProcess | undefined)[] = [undefined, undefined]
    const loads: ((() => Promise<void>) | undefined)[] = [undefined, undefined]
    const start = async (i: number) => {
      running[i] = await startCollectorProcess(files[i]!)
      loads[i] = load(running[i]!.url, acked)
    }
    await start(0)
    await start(1)
    for (let round = 0; round < ROUNDS; round++) {
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 1500))
      const victim = round % 2
      running[victim]!.child.kill('SIGKILL')
      await running[victim]!.exited
      await loads[victim]!()
      await start(victim)
      console.log(`round ${round + 1}/${ROUNDS}: killed collector ${'ab'[victim]}; ${acked.size} acknowledged so far`)
    }
    await Promise.all(loads.map((stop) => stop!()))
    for (const c of running) {
      let last = -1
      await eventually('log drained', async () => {
        const n = await backlog(c!.url)
        if (Math.abs(n - last) > 5000) {
          console.log(`backlog ${n}`)
          last = n
        }
        return n === 0
      }, 300_000)
    }
    for (const c of running) {
      c!.child.kill('SIGTERM')
      expect(await c!.exited).toBe(0)
    }

    const pool = new pg.Pool({ connectionString: scratch.url })
    try {
      const ids = [...acked]
      expect(ids.length).toBeGreaterThan(ROUNDS * 100)
      const missing = await pool.query('SELECT count(*)::int AS n FROM unnest($1::uuid[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.id = a.id)', [ids])
      const dup = await pool.query('SELECT (count(*) - count(DISTINCT id))::int AS n FROM audit_log')
      expect(missing.rows[0].n).toBe(0)
      expect(dup.rows[0].n).toBe(0)
      const report = await verifyAuditLog({ rows: async (sql, params) => (await pool.query(sql, params as unknown[])).rows })
      expect(report.chains.map((c) => [c.chain, c.broken])).toEqual(TENANTS.map((t) => [t, undefined]))
      expect(report).toMatchObject({ ok: true, unchained: 0 })
      const perChain = await pool.query(`SELECT chain, count(*)::int AS n, max(chain_seq)::int AS top, count(DISTINCT chain_seq)::int AS distinct_seqs FROM audit_log GROUP BY chain ORDER BY chain`)
      for (const r of perChain.rows) expect(r, r.chain).toMatchObject({ top: r.n, distinct_seqs: r.n })
      console.log(`${ids.length} acknowledged ids once; ${report.chains.length} chains of ${perChain.rows.map((r) => r.n).join(', ')} rows, each whole and gapless`)
    } finally {
      await pool.end()
    }
  }, 900_000)
})
