/**
 * `npm run bench:triggers`: what the legacy database's 64 triggers cost its
 * writes, measured the way a team would remove them. examples/legacy-db's
 * workload (examples/legacy-db/workload.mjs, its own process) runs on the
 * real PostgreSQL server with every trigger, after each phase of
 * `actline triggers plan`, with only the business triggers left, and with
 * those and the SDK on (the register hook, shipping db.* activities to a
 * real collector process on embedded stores, on these same 2 cores).
 *
 * Rounds interleave the steps, the order rotated each round, and each run
 * starts from a vacuumed, checkpointed database (bench:overhead found one
 * step's WAL and dead rows landing on the next otherwise). The triggers of
 * a step are set with the toolkit itself: restore from one backup, then drop
 * by plan.
 *
 *   npm run bench:triggers                         # PG_URL, default postgres://postgres@127.0.0.1:5432/test
 *   BENCH_ROUNDS=5 BENCH_SECONDS=6 BENCH_CLIENTS=4 npm run bench:triggers   # the defaults; ~7 minutes
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { restore, takeBackup, type Backup } from '../toolkit/triggers/backup.ts'
import { makePlan, prepareDrop, runDrop, type Plan } from '../toolkit/triggers/plan.ts'
import { readTriggers } from '../toolkit/triggers/catalog.ts'
import { metrics, startCollector, timeToStored } from './collector-process.ts'
import { median } from './query-scenarios.ts'
import { scratchDatabase } from './scratch-db.ts'
import { cpuCount, machineCpu, pinPostgres, postgresCpu, processCpu } from './proc-cpu.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6)
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 4)
const SERVER = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
/** The tables people use directly: phase 2 as the teams planned it (user-facing first, then the system's). */
/** Which parts run: the workload's steps, the backfill's throughput, or both. */
const PARTS = (process.env.BENCH_PARTS ?? 'workload,backfill').split(',')
const BACKFILL_ROWS = Number(process.env.BENCH_BACKFILL_ROWS ?? 500_000)
/** Pinned as bench:app is: the collector on the last core (another host), PostgreSQL and the workload on the rest. BENCH_PIN=false: not pinned. */
const PIN = process.env.BENCH_PIN !== 'false'
const USER_FACING = ['organizations', 'users', 'user_profiles', 'sessions', 'api_tokens', 'memberships', 'projects', 'project_members', 'investors', 'investments']

interface Step {
  name: string
  /** Plan phases dropped (of the plan without --include), then whether notify/timestamp go too. */
  phases: (1 | 2 | 3)[]
  onlyBusiness?: boolean
  sdk?: boolean
}

const STEPS: Step[] = [
  { name: 'all 64 triggers', phases: [] },
  { name: 'phase 1 dropped (redundant)', phases: [1] },
  { name: 'phase 2 dropped (user-facing audit/activity)', phases: [1, 2] },
  { name: 'phase 3 dropped (every audit/activity)', phases: [1, 2, 3] },
  { name: 'business triggers only', phases: [1, 2, 3], onlyBusiness: true },
  { name: 'business triggers only + SDK on', phases: [1, 2, 3], onlyBusiness: true, sdk: true },
]

async function main() {
  const scratch = await scratchDatabase(SERVER, 'actline_bench_triggers')
  const { url: db, version } = scratch
  const dir = mkdtempSync(join(tmpdir(), 'actline-bench-triggers-'))
  let collector: Awaited<ReturnType<typeof startCollector>> | undefined
  const client = new pg.Client({ connectionString: db })
  let unpin = () => {}
  try {
    console.log(`bench:triggers on PostgreSQL ${version}: ${ROUNDS} rounds x ${STEPS.length} steps x ${SECONDS} s, ${CLIENTS} connections`)
    await workload(db, ['--setup'])
    await client.connect()
    const backup = await takeBackup(client)
    const plan = await makePlan(client, { parityTables: USER_FACING })
    const all = await makePlan(client, { include: ['notify', 'timestamp'] })
    console.log(`64 triggers backed up; plan: ${plan.phases.map((p) => `phase ${p.phase} ${p.triggers.length}`).join(', ')}`)

    const configFile = join(dir, 'collector.yaml')
    writeFileSync(configFile, `data_dir: ${join(dir, 'data')}\nserver: { port: 0, log_level: warn }\n`)
    const last = cpuCount() - 1
    collector = await startCollector(configFile, [], PIN ? String(last) : undefined)
    unpin = PIN ? pinPostgres(`0-${last - 1}`) : () => {}

    if (PARTS.includes('workload')) {
    const results = new Map<string, { tps: number[]; triggers: number; activities: number[]; dropped: number[]; cpu: { postgres: number; app: number; collector: number }[] }>()
    for (let round = 0; round < ROUNDS; round++) {
      // Rotated: a step is not always measured after the same one.
      const order = STEPS.map((_, i) => STEPS[(i + round) % STEPS.length]!)
      for (const step of order) {
        const triggers = await setTriggers(client, backup, plan, all, step)
        await settle(client)
        const before = (await metrics(collector.url)).accepted
        const cpu0 = cpuSeconds(collector.child.pid!)
        const r = JSON.parse(await workload(db, ['--seconds', String(SECONDS), '--clients', String(CLIENTS), '--seed', String(round + 1), '--json'], step.sdk ? collector.url : undefined))
        // The collector's share includes storing what it accepted: measured until its queues are empty.
        await timeToStored(collector.url)
        const cpu = cpuSeconds(collector.child.pid!, cpu0)
        const entry = results.get(step.name) ?? { tps: [], triggers, activities: [], dropped: [], cpu: [] }
        entry.tps.push(r.tx_per_s)
        // CPU milliseconds per transaction, by who spent it: where the 2 cores went.
        entry.cpu.push({ postgres: (cpu.postgres / r.transactions) * 1000, app: (cpu.app / r.transactions) * 1000, collector: (cpu.collector / r.transactions) * 1000 })
        if (step.sdk) {
          // Every activity the app sent is in the collector's intake: checked, not assumed.
          const accepted = (await metrics(collector.url)).accepted - before
          entry.activities.push(accepted)
          entry.dropped.push(r.activities.dropped)
          if (accepted !== r.activities.sent) throw new Error(`the app sent ${r.activities.sent} activities, the collector accepted ${accepted}`)
        }
        results.set(step.name, entry)
        console.log(`  round ${round + 1}  ${step.name.padEnd(46)} ${String(triggers).padStart(2)} triggers  ${String(r.tx_per_s).padStart(6)} tx/s${step.sdk ? `  (${r.activities.sent} activities sent, ${r.activities.dropped} dropped)` : ''}${r.failed ? `  ${r.failed} failed` : ''}`)
      }
    }
    // Ratios within a round (the machine is shared: a slow minute slows every step in it), then their median.
    const base = results.get(STEPS[0]!.name)!.tps
    console.log(`\n| step | triggers | median tx/s | vs all 64 (median of per-round ratios) | tx/s per round | CPU ms per tx: PostgreSQL / app / collector |\n| --- | ---: | ---: | ---: | --- | --- |`)
    for (const step of STEPS) {
      const r = results.get(step.name)!
      const ratio = median(r.tps.map((t, i) => t / base[i]!))
      const cpu = (k: 'postgres' | 'app' | 'collector') => median(r.cpu.map((c) => c[k])).toFixed(2)
      console.log(`| ${step.name} | ${r.triggers} | ${median(r.tps).toLocaleString('en-US')} | ${ratio.toFixed(2)}x | ${r.tps.join(', ')} | ${cpu('postgres')} / ${cpu('app')} / ${cpu('collector')} |`)
    }
    const sdk = results.get(STEPS.at(-1)!.name)!
    console.log(`\nSDK on: ${sdk.activities.join(', ')} db activities per run accepted by the collector, ${sdk.dropped.reduce((a, b) => a + b, 0)} dropped by the app's client`)
    }
    if (PARTS.includes('backfill')) await backfill(client, db, collector, dir)
  } finally {
    collector?.child.kill('SIGTERM')
    unpin()
    await client.end().catch(() => {})
    await scratch.drop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * `actline triggers backfill` of BACKFILL_ROWS legacy rows (the shape the
 * audit trigger writes: to_jsonb of old and new, the actor) through the
 * collector process into its embedded stores: the backfill's own rate, and
 * the rate until every row is stored (the collector's queues empty),
 * checked against the audit trail's count.
 */
async function backfill(client: pg.Client, db: string, collector: Awaited<ReturnType<typeof startCollector>>, dir: string): Promise<void> {
  await client.query(`CREATE TABLE backfill_audit (LIKE audit_logs INCLUDING ALL)`)
  await client.query(
    `INSERT INTO backfill_audit (table_name, operation, row_id, old_data, new_data, changed_by, changed_at)
     SELECT (ARRAY['users','projects','investments','payments'])[1 + i % 4], (ARRAY['INSERT','UPDATE','DELETE'])[1 + i % 3], (i % 50000)::text,
            CASE WHEN i % 3 > 0 THEN jsonb_build_object('id', i % 50000, 'email', 'user' || i || '@example.com', 'name', 'User ' || i, 'updated_at', now()) END,
            CASE WHEN i % 3 < 2 THEN jsonb_build_object('id', i % 50000, 'email', 'user' || i || '@example.org', 'name', 'User ' || i, 'updated_at', now()) END,
            'u-' || (i % 500), now() - interval '90 days' + i * interval '10 ms'
     FROM generate_series(1, $1) AS i`,
    [BACKFILL_ROWS],
  )
  await settle(client)
  const before = await metrics(collector.url)
  const t0 = performance.now()
  // When each store had every row: the slower one is what end to end waits for.
  const done: { clickhouse?: number; postgres?: number } = {}
  const watch = setInterval(async () => {
    const m = await metrics(collector.url).catch(() => undefined)
    if (!m) return
    if (done.clickhouse === undefined && m.chExported - before.chExported >= BACKFILL_ROWS) done.clickhouse = (performance.now() - t0) / 1000
    if (done.postgres === undefined && m.pgExported - before.pgExported >= BACKFILL_ROWS) done.postgres = (performance.now() - t0) / 1000
  }, 250)
  const out = await run(process.execPath, [join(root, 'bin/actline.js'), 'triggers', 'backfill', '--db', db, '--legacy-table', 'backfill_audit', '--collector', collector.url, '--checkpoint', join(dir, 'backfill.json'), '--json'])
  const accepted = (performance.now() - t0) / 1000
  await timeToStored(collector.url)
  const stored = (performance.now() - t0) / 1000
  clearInterval(watch)
  const r = JSON.parse(out)
  const exported = (await metrics(collector.url)).pgExported - before.pgExported
  if (r.sent !== BACKFILL_ROWS || exported !== BACKFILL_ROWS) throw new Error(`backfill sent ${r.sent} rows, the audit trail took ${exported}, of ${BACKFILL_ROWS}`)
  console.log(`\nbackfill: ${BACKFILL_ROWS.toLocaleString('en-US')} legacy rows; accepted by the collector in ${accepted.toFixed(1)} s (${Math.round(BACKFILL_ROWS / accepted).toLocaleString('en-US')} rows/s), stored in ClickHouse and the audit trail in ${stored.toFixed(1)} s (${Math.round(BACKFILL_ROWS / stored).toLocaleString('en-US')} rows/s end to end); every row in ClickHouse after ${done.clickhouse?.toFixed(1) ?? '?'} s, in the audit trail after ${done.postgres?.toFixed(1) ?? stored.toFixed(1)} s`)
}

/** A command's stdout; its stderr (the progress bar) passed through. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env, cwd: root })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.slice(0, 3).join(' ')} exited with ${code}`))))
  })
}

/** The step's triggers, from any state: every trigger as backed up, then the step's phases dropped. */
async function setTriggers(client: pg.Client, backup: Backup, plan: Plan, all: Plan, step: Step): Promise<number> {
  const differ = await restore(client, backup.triggers)
  if (differ.length) throw new Error(`restore left ${differ.join(', ')} different from the backup`)
  if (step.phases.length) await runDrop(client, await prepareDrop(client, plan, step.phases))
  if (step.onlyBusiness) await runDrop(client, await prepareDrop(client, all, [1, 2, 3], { include: ['notify', 'timestamp'] }))
  return (await readTriggers(client)).length
}

async function settle(client: pg.Client): Promise<void> {
  await client.query('VACUUM ANALYZE')
  await client.query('CHECKPOINT')
}

interface Cpu {
  postgres: number
  collector: number
  /** Every other process: the workload (the app), and whatever else ran. */
  app: number
  total: number
}

/**
 * CPU seconds spent by the PostgreSQL server's processes, the collector and
 * the rest of the machine (the workload) since `since`. The app is what the
 * machine's total (/proc/stat) leaves: a workload process that has exited
 * can no longer be read by pid.
 */
function cpuSeconds(collector: number, since?: Cpu): Cpu {
  const postgres = postgresCpu()
  const total = machineCpu()
  const now = { postgres, collector: processCpu(collector), app: 0, total }
  now.app = total - postgres - now.collector
  if (!since) return now
  return { postgres: now.postgres - since.postgres, collector: now.collector - since.collector, app: now.app - since.app, total: now.total - since.total }
}

/** examples/legacy-db/workload.mjs as its own process (with the register hook when `collector` is given); its stdout. */
function workload(db: string, args: string[], collector?: string): Promise<string> {
  const node = collector ? ['--import', '@actline/instrumentation/register'] : []
  const env = collector ? { ...process.env, ACTLINE_ENDPOINT: collector, OTEL_SERVICE_NAME: 'legacy-app' } : process.env
  const command = [process.execPath, ...node, join(root, 'examples/legacy-db/workload.mjs'), '--db', db, ...args]
  return PIN ? run('taskset', ['-c', `0-${cpuCount() - 2}`, ...command], env) : run(command[0]!, command.slice(1), env)
}

await main()
