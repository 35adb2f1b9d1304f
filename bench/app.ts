/**
 * `npm run bench:app`: what auditing costs a real service. bench/app/service.mjs
 * (Fastify + pg, a POST is a transaction of four writes, one request in five a
 * GET) runs on the real PostgreSQL server under each variant: no auditing,
 * one audit trigger per table, the register hook, an app tracing with the
 * OpenTelemetry SDK, the same with ActivitySpanProcessor, and the register
 * hook as it was before issue 27 (the OpenTelemetry SDK with its
 * instrumentations and the processor, no exporter).
 *
 * Side by side, literally: each measurement window runs two variants at once
 * (each in its own schema, with its own connections, half the load each), so
 * both see the same machine. On this shared machine one variant's CPU per
 * request moved 2x between windows a minute apart; between two variants in
 * one window it does not. A round is one window per pair, the order rotated;
 * ratios are taken within a window, then their median.
 *
 * The collector is a real process on the last core (taskset), standing in for
 * another host, with the load generator (this process); the apps and
 * PostgreSQL share the other cores. CPU per request is read from /proc: each
 * app's process (and its main thread), and the PostgreSQL backends serving
 * that app (found by application_name).
 *
 *   npm run bench:app                                   # PG_URL, default postgres://postgres@127.0.0.1:5432/test
 *   BENCH_ROUNDS=4 BENCH_SECONDS=10 BENCH_CLIENTS=8 BENCH_PAIRS=none:hook,trigger:hook npm run bench:app
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
/** The windows: by default the comparisons the issue's targets name; BENCH_PAIRS picks others (ctx, hook-writes, hook-nogzip). */
const DEFAULT_PAIRS = 'none:trigger,none:hook,trigger:hook,otel:otel-asp,none:otel,none:old-hook'
const byName = (name: string) => ALL.find((v) => v.name === name) ?? fail(`no variant ${name}: ${ALL.map((v) => v.name).join(', ')}`)
const PAIRS = (process.env.BENCH_PAIRS ?? DEFAULT_PAIRS).split(',').map((p) => p.split(':').map(byName) as [Variant, Variant])
const VARIANTS = ALL.filter((v) => PAIRS.some((p) => p.includes(v)))

function fail(message: string): never {
  throw new Error(message)
}

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

/** One variant's figures in one window, and the window's own partner. */
interface Measured extends Run {
  pair: string
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
    for (const v of VARIANTS) await setup(client, v.name)
    const configFile = join(dir, 'collector.yaml')
    writeFileSync(configFile, `data_dir: ${join(dir, 'data')}\nserver: { port: 0, log_level: warn }\n`)
    collector = await startCollector(configFile, [], String(last))
    pin(process.pid, String(last))
    unpin = pinPostgres(appCpus)
    console.log(`bench:app on PostgreSQL ${version}, Node ${process.version}, ${cpuCount()} CPUs: apps + PostgreSQL on CPU ${appCpus}, collector + load on CPU ${last}`)
    console.log(`${ROUNDS} rounds x ${PAIRS.length} windows of two variants side by side, ${SECONDS} s each (after ${WARMUP} s of warm-up), ${CLIENTS} connections split between them, 4 POST : 1 GET\n`)
    const windows: [Measured, Measured][] = []
    for (let round = 0; round < ROUNDS; round++) {
      const order = PAIRS.map((_, i) => PAIRS[(i + round) % PAIRS.length]!)
      for (const pair of order) {
        await client.query('VACUUM ANALYZE')
        await client.query('CHECKPOINT')
        const [a, b] = await measure(pair, db, appCpus, collector.url, sink.url)
        windows.push([a!, b!])
        const line = (r: Measured, v: Variant) => `${v.name} ${r.rps.toFixed(0)} req/s, app ${r.appMs.toFixed(3)} ms/req (main ${r.mainMs.toFixed(3)}), PostgreSQL ${r.pgMs.toFixed(3)}${r.failed ? `, ${r.failed} failed` : ''}${r.activitiesPerRequest === undefined ? '' : `, ${r.activitiesPerRequest.toFixed(2)} activities/req`}`
        console.log(`  round ${round + 1}  ${line(a!, pair[0])}  |  ${line(b!, pair[1])}  ->  app ${(b!.appMs / a!.appMs).toFixed(2)}x`)
      }
    }
    report(windows)
  } finally {
    collector?.child.kill('SIGTERM')
    unpin()
    sink.server.close()
    await client.end().catch(() => {})
    await scratch.drop()
    rmSync(dir, { recursive: true, force: true })
  }
}

function report(windows: [Measured, Measured][]): void {
  console.log('\n| window: A and B side by side | A app CPU ms/req | B app CPU ms/req | B/A app CPU | B/A main thread | A PostgreSQL ms/req | B PostgreSQL ms/req | B/A app + PostgreSQL | A req/s | B req/s | B/A req/s |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  const seen = new Set<string>()
  for (const [a, b] of PAIRS) {
    // A pair listed twice is measured twice and reported once.
    if (seen.has(`${a.name}:${b.name}`)) continue
    seen.add(`${a.name}:${b.name}`)
    const ws = windows.filter(([x, y]) => x.pair === a.name && y.pair === b.name)
    const ratio = (f: (r: Run) => number) => median(ws.map(([x, y]) => f(y) / f(x))).toFixed(2)
    const med = (i: 0 | 1, f: (r: Run) => number) => median(ws.map((w) => f(w[i])))
    console.log(
      `| ${a.label} / **${b.label}** | ${med(0, (r) => r.appMs).toFixed(3)} | ${med(1, (r) => r.appMs).toFixed(3)} | **${ratio((r) => r.appMs)}x** | ${ratio((r) => r.mainMs)}x | ${med(0, (r) => r.pgMs).toFixed(3)} | ${med(1, (r) => r.pgMs).toFixed(3)} | ${ratio((r) => r.appMs + r.pgMs)}x | ${med(0, (r) => r.rps).toFixed(0)} | ${med(1, (r) => r.rps).toFixed(0)} | ${ratio((r) => r.rps)}x |`,
    )
  }
}

/** One window: both variants' services started fresh, warmed up, measured over the same seconds. */
async function measure(pair: [Variant, Variant], db: string, cpus: string, collectorUrl: string, sinkUrl: string): Promise<Measured[]> {
  const acceptedBefore = (await metrics(collectorUrl)).accepted
  const apps = pair.map((variant) => {
    const url = new URL(db)
    // Each variant in its own schema (its tables, the trigger's with its triggers), its backends named for it.
    url.searchParams.set('options', `-c search_path=${schemaOf(variant.name)}`)
    url.searchParams.set('application_name', `bench-${variant.name}`)
    const env = {
      ...process.env,
      VARIANT: variant.name === 'old-hook' ? 'otel-asp-only' : variant.name,
      DATABASE_URL: url.toString(),
      PORT: '0',
      ACTLINE_ENDPOINT: collectorUrl,
      OTEL_SERVICE_NAME: `bench-app-${variant.name}`,
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${sinkUrl}/v1/traces`,
      ...variant.env,
    }
    // BENCH_APP_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof': a profile of each app.
    const args = [...(process.env.BENCH_APP_NODE_ARGS?.split(' ').filter(Boolean) ?? []), ...variant.imports.flatMap((m) => ['--import', m])]
    return { variant, child: spawn('taskset', ['-c', cpus, process.execPath, ...args, join(root, 'bench/app/service.mjs')], { env, stdio: ['ignore', 'pipe', 'inherit'], cwd: root }) }
  })
  const admin = new pg.Client({ connectionString: db })
  await admin.connect()
  try {
    const urls = await Promise.all(apps.map((a) => listening(a.child)))
    const loads = urls.map((u) => loadGenerator(u, Math.max(1, Math.floor(CLIENTS / 2))))
    await sleep(WARMUP * 1000)
    const backends = await Promise.all(apps.map(async (a) => (await admin.query('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [`bench-${a.variant.name}`])).rows.map((r: { pid: number }) => r.pid)))
    const snap = () => apps.map((a, i) => ({ app: processCpu(a.child.pid!), main: threadCpu(a.child.pid!), pg: backends[i]!.reduce((sum, pid) => sum + processCpu(pid), 0), done: loads[i]!.done, failed: loads[i]!.snapshot().failed }))
    const before = snap()
    await sleep(SECONDS * 1000)
    const after = snap()
    await Promise.all(loads.map((l) => l.stop()))
    const out: Measured[] = apps.map((a, i) => {
      const requests = after[i]!.done - before[i]!.done
      return {
        pair: a.variant.name,
        requests,
        failed: after[i]!.failed - before[i]!.failed,
        rps: requests / SECONDS,
        appMs: ((after[i]!.app - before[i]!.app) / requests) * 1000,
        mainMs: ((after[i]!.main - before[i]!.main) / requests) * 1000,
        pgMs: ((after[i]!.pg - before[i]!.pg) / requests) * 1000,
      }
    })
    // What the apps sent for every request, once the collector has it all: checked, not assumed.
    const expects = apps.map((a, i) => (a.variant.activities ? { i, per: a.variant.activities } : undefined)).filter((e) => e !== undefined)
    if (expects.length) {
      await Promise.all(apps.map((a) => stop(a.child)))
      await timeToStored(collectorUrl)
      const accepted = (await metrics(collectorUrl)).accepted - acceptedBefore
      let expected = 0
      for (const { i, per } of expects) {
        const total = loads[i]!.snapshot()
        expected += total.post * per.post + total.get * per.get
        out[i]!.activitiesPerRequest = (total.post * per.post + total.get * per.get) / (total.post + total.get)
      }
      if (accepted !== expected) console.log(`    expected ${expected} activities, the collector accepted ${accepted}`)
    }
    return out
  } finally {
    await admin.end()
    await Promise.all(apps.map((a) => stop(a.child)))
  }
}

/** `clients` closed-loop connections: 4 POSTs to 1 GET of an order made before. */
function loadGenerator(base: string, clients: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients })
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
  const workers = Array.from({ length: clients }, worker)
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

const schemaOf = (variant: string) => `v_${variant.replace(/-/g, '_')}`

/** A variant's own schema: its tables, and for `trigger` the audit table and one trigger per table. */
async function setup(client: pg.Client, variant: string): Promise<void> {
  const schema = schemaOf(variant)
  await client.query(`
    CREATE SCHEMA ${schema}; SET search_path = ${schema};
    CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, balance numeric(14, 2) NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE orders (id bigserial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts, customer text NOT NULL, total numeric(12, 2) NOT NULL,
                         status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE order_items (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, sku text NOT NULL, qty int NOT NULL, price numeric(10, 2) NOT NULL);
    CREATE INDEX ON order_items (order_id);
    INSERT INTO accounts SELECT i, 'account ' || i, 1000000 FROM generate_series(1, 1000) i;`)
  if (variant === 'trigger') {
    await client.query(`
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
    for (const table of ['accounts', 'orders', 'order_items']) {
      await client.query(`CREATE TRIGGER ${table}_audit AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION audit_row()`)
    }
  }
  await client.query('RESET search_path')
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
