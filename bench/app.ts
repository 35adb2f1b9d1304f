/**
 * `npm run bench:app`: what auditing costs a real service. bench/app/service.mjs
 * (Fastify + pg, a POST is a transaction of four writes, one request in five a
 * GET) runs on the real PostgreSQL server under each variant, interleaved
 * round by round, the order rotated: no auditing, one audit trigger per table,
 * the register hook, an app tracing with the OpenTelemetry SDK, the same with
 * ActivitySpanProcessor, and the register hook as it was before issue 27 (the
 * OpenTelemetry SDK with its instrumentations and the processor, no exporter).
 *
 * The collector is a real process on the last core (taskset), standing in for
 * another host, with the load generator (this process); the app and
 * PostgreSQL share the other cores. CPU per request is read from /proc: the
 * app's process, and every PostgreSQL process. Ratios are taken within a
 * round, then their median.
 *
 *   npm run bench:app                                   # PG_URL, default postgres://postgres@127.0.0.1:5432/test
 *   BENCH_ROUNDS=3 BENCH_SECONDS=10 BENCH_CLIENTS=8 BENCH_VARIANTS=none,hook npm run bench:app
 */
import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { metrics, startCollector, timeToStored } from './collector-process.ts'
import { cpuCount, pin, pinPostgres, postgresCpu, processCpu, threadCpuSeconds } from './proc-cpu.ts'

const threadCpu = (pid: number) => threadCpuSeconds(pid, pid)
import { median } from './query-scenarios.ts'
import { scratchDatabase } from './scratch-db.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? 3)
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8)
const SERVER = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

interface Variant {
  name: string
  label: string
  imports: string[]
  env?: Record<string, string>
  /** Activities each POST and each GET should become (checked against what the collector accepted). */
  activities?: { post: number; get: number }
}
const ALL: Variant[] = [
  { name: 'none', label: 'no auditing', imports: [] },
  { name: 'trigger', label: 'one to_jsonb(OLD/NEW) audit trigger per table', imports: [] },
  { name: 'hook', label: 'register hook (node --import @actline/instrumentation/register)', imports: ['@actline/instrumentation/register'], activities: { post: 5, get: 1 } },
  { name: 'ctx', label: 'withActivityContext only (the SDK imported, no hook)', imports: [] },
  { name: 'hook-writes', label: 'register hook, ACTLINE_HTTP_REQUESTS=writes', imports: ['@actline/instrumentation/register'], env: { ACTLINE_HTTP_REQUESTS: 'writes', VARIANT: 'hook' }, activities: { post: 5, get: 0 } },
  { name: 'hook-nogzip', label: 'register hook, ACTLINE_GZIP=false', imports: ['@actline/instrumentation/register'], env: { ACTLINE_GZIP: 'false', VARIANT: 'hook' }, activities: { post: 5, get: 1 } },
  { name: 'otel', label: 'app tracing with the OpenTelemetry SDK (OTLP exporter)', imports: [join(root, 'bench/app/otel.mjs')] },
  { name: 'otel-asp', label: 'the same + ActivitySpanProcessor', imports: [join(root, 'bench/app/otel.mjs')], activities: { post: 5, get: 1 } },
  { name: 'old-hook', label: 'register hook before issue 27 (OpenTelemetry SDK + processor)', imports: [join(root, 'bench/app/otel.mjs')], activities: { post: 5, get: 1 } },
]
/** By default the variants the issue's targets name; BENCH_VARIANTS picks others (ctx, hook-writes, hook-nogzip). */
const DEFAULT = ['none', 'trigger', 'hook', 'otel', 'otel-asp', 'old-hook']
const VARIANTS = ALL.filter((v) => (process.env.BENCH_VARIANTS?.split(',') ?? DEFAULT).includes(v.name))

interface Run {
  requests: number
  failed: number
  rps: number
  appMs: number
  /** The app's main thread alone: the rest is V8's compiler and GC helpers and libuv's pool. */
  mainMs: number
  pgMs: number
  activitiesPerRequest?: number
}

async function main() {
  const scratch = await scratchDatabase(SERVER, 'actline_bench_app')
  const { url: db, version } = scratch
  const dir = mkdtempSync(join(tmpdir(), 'actline-bench-app-'))
  const last = cpuCount() - 1
  const appCpus = `0-${last - 1}`
  const client = new pg.Client({ connectionString: db })
  const sink = await otlpSink()
  let collector: Awaited<ReturnType<typeof startCollector>> | undefined
  let unpin = () => {}
  try {
    await client.connect()
    await setup(client)
    const configFile = join(dir, 'collector.yaml')
    writeFileSync(configFile, `data_dir: ${join(dir, 'data')}\nserver: { port: 0, log_level: warn }\n`)
    collector = await startCollector(configFile, [], String(last))
    pin(process.pid, String(last))
    unpin = pinPostgres(appCpus)
    console.log(`bench:app on PostgreSQL ${version}, Node ${process.version}, ${cpuCount()} CPUs: app + PostgreSQL on CPU ${appCpus}, collector + load on CPU ${last}`)
    console.log(`${ROUNDS} rounds x ${VARIANTS.length} variants x ${SECONDS} s (after ${WARMUP} s of warm-up), ${CLIENTS} connections, 4 POST : 1 GET\n`)
    const results = new Map<string, Run[]>()
    for (let round = 0; round < ROUNDS; round++) {
      const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!)
      for (const variant of order) {
        if (variant.name === 'trigger') await triggers(client, true)
        await client.query('VACUUM ANALYZE')
        await client.query('CHECKPOINT')
        const r = await measure(variant, db, appCpus, collector.url, sink.url)
        if (variant.name === 'trigger') await triggers(client, false)
        ;(results.get(variant.name) ?? results.set(variant.name, []).get(variant.name)!).push(r)
        const acts = r.activitiesPerRequest === undefined ? '' : `  ${r.activitiesPerRequest.toFixed(2)} activities/request`
        console.log(`  round ${round + 1}  ${variant.name.padEnd(9)} ${r.rps.toFixed(0).padStart(5)} req/s  app ${r.appMs.toFixed(3)} ms/req (main thread ${r.mainMs.toFixed(3)})  PostgreSQL ${r.pgMs.toFixed(3)} ms/req${r.failed ? `  ${r.failed} failed` : ''}${acts}`)
      }
    }
    report(results)
  } finally {
    collector?.child.kill('SIGTERM')
    unpin()
    sink.server.close()
    await client.end().catch(() => {})
    await scratch.drop()
    rmSync(dir, { recursive: true, force: true })
  }
}

function report(results: Map<string, Run[]>): void {
  const base = results.get('none')
  const trig = results.get('trigger')
  const ratio = (runs: Run[], of: Run[] | undefined, f: (r: Run) => number) => (of ? median(runs.map((r, i) => f(r) / f(of[i]!))) : NaN)
  console.log('\n| variant | app CPU ms/request | vs none | main thread ms/request | PostgreSQL CPU ms/request | app + PostgreSQL vs trigger | requests/s | vs none |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const v of VARIANTS) {
    const runs = results.get(v.name)!
    const med = (f: (r: Run) => number) => median(runs.map(f))
    console.log(
      `| ${v.label} | ${med((r) => r.appMs).toFixed(3)} | ${ratio(runs, base, (r) => r.appMs).toFixed(2)}x | ${med((r) => r.mainMs).toFixed(3)} | ${med((r) => r.pgMs).toFixed(3)} | ${ratio(runs, trig, (r) => r.appMs + r.pgMs).toFixed(2)}x | ${med((r) => r.rps).toFixed(0)} | ${ratio(runs, base, (r) => r.rps).toFixed(2)}x |`,
    )
  }
  const otel = results.get('otel')
  const asp = results.get('otel-asp')
  if (otel && asp) console.log(`\nActivitySpanProcessor added to a tracing app: ${ratio(asp, otel, (r) => r.appMs).toFixed(3)}x its app CPU per request (median of per-round ratios)`)
}

/** One variant: the service started fresh, warmed up, then measured. */
async function measure(variant: Variant, db: string, cpus: string, collectorUrl: string, sinkUrl: string): Promise<Run> {
  const env = {
    ...process.env,
    VARIANT: variant.name === 'old-hook' ? 'otel-asp-only' : variant.name,
    DATABASE_URL: db,
    PORT: '0',
    ACTLINE_ENDPOINT: collectorUrl,
    OTEL_SERVICE_NAME: `bench-app-${variant.name}`,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${sinkUrl}/v1/traces`,
    ...variant.env,
  }
  // BENCH_APP_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof': a profile of the app alone.
  const imports = [...(process.env.BENCH_APP_NODE_ARGS?.split(' ').filter(Boolean) ?? []), ...variant.imports.flatMap((m) => ['--import', m])]
  const acceptedBefore = variant.activities ? (await metrics(collectorUrl)).accepted : 0
  const app = spawn('taskset', ['-c', cpus, process.execPath, ...imports, join(root, 'bench/app/service.mjs')], { env, stdio: ['ignore', 'pipe', 'inherit'], cwd: root })
  try {
    const url = await listening(app)
    const load = loadGenerator(url)
    await sleep(WARMUP * 1000)
    const before = { app: processCpu(app.pid!), main: threadCpu(app.pid!), pg: postgresCpu(), done: load.done, load: load.snapshot() }
    await sleep(SECONDS * 1000)
    const after = { app: processCpu(app.pid!), main: threadCpu(app.pid!), pg: postgresCpu(), done: load.done, load: load.snapshot() }
    await load.stop()
    const requests = after.done - before.done
    let activitiesPerRequest: number | undefined
    if (variant.activities) {
      // What the app sent for every request since the warm-up began, once the collector has it all.
      await stop(app)
      await timeToStored(collectorUrl)
      const total = load.snapshot()
      const expected = total.post * variant.activities.post + total.get * variant.activities.get
      const accepted = (await metrics(collectorUrl)).accepted - acceptedBefore
      activitiesPerRequest = accepted / (total.post + total.get)
      if (accepted !== expected) console.log(`    ${variant.name}: expected ${expected} activities, the collector accepted ${accepted}`)
    }
    return {
      requests,
      failed: after.load.failed - before.load.failed,
      rps: requests / SECONDS,
      appMs: ((after.app - before.app) / requests) * 1000,
      mainMs: ((after.main - before.main) / requests) * 1000,
      pgMs: ((after.pg - before.pg) / requests) * 1000,
      ...(activitiesPerRequest !== undefined && { activitiesPerRequest }),
    }
  } finally {
    await stop(app)
  }
}

/** CLIENTS closed-loop connections: 4 POSTs to 1 GET of an order made before. */
function loadGenerator(base: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS })
  const counts = { post: 0, get: 0, failed: 0 }
  const ids: number[] = []
  let running = true
  let seq = 0
  const request = (method: string, path: string, body?: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(`${base}${path}`, { method, agent, headers: { 'x-user-id': `u-${seq % 50}`, ...(body && { 'content-type': 'application/json' }) } }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      })
      req.on('error', reject)
      req.end(body)
    })
  const worker = async () => {
    while (running) {
      const n = seq++
      try {
        if (n % 5 === 4 && ids.length) {
          const r = await request('GET', `/orders/${ids[(n * 7919) % ids.length]}`)
          if (r.status === 200) counts.get++
          else counts.failed++
        } else {
          const account = 1 + (n % 1000)
          const body = JSON.stringify({ account, customer: `customer-${account}`, items: [{ sku: `sku-${n % 97}`, qty: 1 + (n % 3), price: 9.5 }, { sku: `sku-${n % 89}`, qty: 2, price: 3.25 }] })
          const r = await request('POST', '/orders', body)
          if (r.status === 201) {
            counts.post++
            if (ids.length < 5000) ids.push((JSON.parse(r.text) as { id: number }).id)
          } else counts.failed++
        }
      } catch {
        counts.failed++
      }
    }
  }
  const workers = Array.from({ length: CLIENTS }, worker)
  return {
    get done() {
      return counts.post + counts.get
    },
    snapshot: () => ({ ...counts }),
    async stop() {
      running = false
      await Promise.all(workers)
      agent.destroy()
    },
  }
}

async function setup(client: pg.Client): Promise<void> {
  await client.query(`
    CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, balance numeric(14, 2) NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE orders (id bigserial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts, customer text NOT NULL, total numeric(12, 2) NOT NULL,
                         status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE order_items (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, sku text NOT NULL, qty int NOT NULL, price numeric(10, 2) NOT NULL);
    CREATE INDEX ON order_items (order_id);
    INSERT INTO accounts SELECT i, 'account ' || i, 1000000 FROM generate_series(1, 1000) i;
    CREATE TABLE audit_log (id bigserial PRIMARY KEY, table_name text NOT NULL, operation text NOT NULL, row_id text, old_data jsonb, new_data jsonb,
                            changed_by text, changed_at timestamptz NOT NULL DEFAULT now());
    CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO audit_log (table_name, operation, row_id, old_data, new_data, changed_by)
      VALUES (TG_TABLE_NAME, TG_OP, CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
              CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END, CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
              current_setting('app.user', true));
      RETURN NULL;
    END $$;`)
}

async function triggers(client: pg.Client, on: boolean): Promise<void> {
  for (const table of ['accounts', 'orders', 'order_items']) {
    await client.query(on ? `CREATE TRIGGER ${table}_audit AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION audit_row()` : `DROP TRIGGER ${table}_audit ON ${table}`)
  }
}

/** Where the tracing variants export: answers every OTLP request with an empty success, as a collector would. */
async function otlpSink(): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` }
}

function listening(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /"url":"(http:[^"]+)"/.exec(line)
      if (m) resolve(m[1]!)
    })
    child.once('exit', (code) => reject(new Error(`the service exited with ${code} before listening`)))
  })
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await Promise.race([exited, sleep(10_000)])
  if (child.exitCode === null) child.kill('SIGKILL')
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

await main()
