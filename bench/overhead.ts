/**
 * npm run bench:overhead — what auditing costs the app, triggers against the
 * SDK, side by side on the real PostgreSQL server at PG_URL.
 *
 * Each transaction is what an app does to a row: BEGIN; INSERT ... RETURNING
 * id; UPDATE that row; COMMIT, from BENCH_CLIENTS concurrent connections.
 * Five setups (the trigger ones on their own tables, b, c and c2 on one
 * plain table), interleaved round by round so that
 * the machine's noise falls on all of them alike:
 *   a1  one classic audit trigger: plpgsql AFTER INSERT/UPDATE/DELETE FOR
 *       EACH ROW writing to_jsonb(OLD/NEW) into a wide, indexed audit_logs;
 *   a4  four triggers, as legacy schemas carry: an updated_at touch, that
 *       audit trigger, an activity-row trigger, a pg_notify trigger;
 *   b   no trigger; the app logs each write with withDatabaseLogging, and
 *       the client ships them (gzip NDJSON) to a sink process;
 *   c   no trigger, no logging;
 *   c2  c again, an A/A check: how far two identical setups land apart is
 *       the noise floor of every ratio.
 * The sink stands in for a collector on another machine: it reads each
 * request and answers 200. It runs on these same 2 cores, so (b) pays for
 * the receiving side too; a real deployment would not.
 *
 * Then, in this process: the hot-path cost of one logUserAction call
 * (median over samples of 1,000 calls, with and without an active span),
 * the CPU per activity including serialization, gzip and POST, and the heap
 * held by 5,000 queued activities (needs --expose-gc; the npm script sets it).
 *
 * Options (env): PG_URL (default postgres://postgres@127.0.0.1:5432/test),
 * BENCH_ROUNDS (default 5), BENCH_SECONDS (per setup per round, default 5),
 * BENCH_CLIENTS (default 8), BENCH_SETUPS (a subset, e.g. b,c; default all five).
 */
import { spawn } from 'node:child_process'
import { cpus, totalmem } from 'node:os'
import { createInterface } from 'node:readline'
import pg from 'pg'
import { trace } from '@opentelemetry/api'
import { node } from '@opentelemetry/sdk-node'
// The compiled package, as an app runs it (tsx would wrap every closure in a naming helper).
import { ActivityClient, configureActivityLogging, getActivityClient, logUserAction, withDatabaseLogging } from '@actline/instrumentation'

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8)
const DB = 'actline_bench_overhead'

type Setup = 'a1' | 'a4' | 'b' | 'c' | 'c2'
const SETUPS = (process.env.BENCH_SETUPS ?? 'a1,a4,b,c,c2').split(',') as Setup[]

function log(msg: string) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`)
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const ORDERS = (t: string) => `CREATE TABLE ${t} (
  id bigserial PRIMARY KEY, customer text NOT NULL, total numeric(12,2) NOT NULL,
  status text NOT NULL DEFAULT 'new', created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())`

// The legacy pattern, as audit tables are usually built: everything about
// the row and the session, indexed for the questions auditors ask.
const SCHEMA = `
${ORDERS('orders_a1')}; ${ORDERS('orders_a4')}; ${ORDERS('orders')};
CREATE TABLE audit_logs (
  id bigserial PRIMARY KEY, table_name text NOT NULL, operation text NOT NULL, row_id text,
  old_data jsonb, new_data jsonb, changed_fields text[], changed_by text, changed_at timestamptz NOT NULL DEFAULT now(),
  transaction_id bigint, client_addr inet, application_name text, session_user_name text);
CREATE INDEX ON audit_logs (table_name, row_id);
CREATE INDEX ON audit_logs (changed_at);
CREATE INDEX ON audit_logs (changed_by);
CREATE INDEX ON audit_logs (operation, table_name);
CREATE TABLE activity_rows (
  id bigserial PRIMARY KEY, action text NOT NULL, entity_type text NOT NULL, entity_id text, actor_id text,
  payload jsonb, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON activity_rows (entity_type, entity_id);
CREATE INDEX ON activity_rows (created_at);

CREATE FUNCTION audit_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  old_j jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
  new_j jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
BEGIN
  INSERT INTO audit_logs (table_name, operation, row_id, old_data, new_data, changed_fields, changed_by,
                          transaction_id, client_addr, application_name, session_user_name)
  VALUES (TG_TABLE_NAME, TG_OP, COALESCE(new_j, old_j)->>'id', old_j, new_j,
          CASE WHEN TG_OP = 'UPDATE' THEN ARRAY(SELECT key FROM jsonb_each(new_j) n WHERE n.value IS DISTINCT FROM old_j->n.key) END,
          current_setting('app.user_id', true), txid_current(), inet_client_addr(),
          current_setting('application_name'), session_user);
  RETURN NULL;
END $$;

CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;

CREATE FUNCTION activity_row_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO activity_rows (action, entity_type, entity_id, actor_id, payload)
  VALUES (lower(TG_TABLE_NAME || '.' || TG_OP), TG_TABLE_NAME, NEW.id::text, current_setting('app.user_id', true), to_jsonb(NEW));
  RETURN NULL;
END $$;

CREATE FUNCTION notify_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('orders_changed', json_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'id', NEW.id)::text);
  RETURN NULL;
END $$;

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON orders_a1 FOR EACH ROW EXECUTE FUNCTION audit_trigger();

CREATE TRIGGER a_touch BEFORE UPDATE ON orders_a4 FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER b_audit AFTER INSERT OR UPDATE OR DELETE ON orders_a4 FOR EACH ROW EXECUTE FUNCTION audit_trigger();
CREATE TRIGGER c_activity AFTER INSERT OR UPDATE ON orders_a4 FOR EACH ROW EXECUTE FUNCTION activity_row_trigger();
CREATE TRIGGER d_notify AFTER INSERT OR UPDATE ON orders_a4 FOR EACH ROW EXECUTE FUNCTION notify_trigger();
`

async function createDatabase(): Promise<string> {
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)
  await admin.query(`CREATE DATABASE ${DB}`)
  const { rows } = await admin.query(`SELECT version(), current_setting('synchronous_commit') AS sync, current_setting('shared_buffers') AS sb`)
  log(`PostgreSQL: ${rows[0].version.split(' on ')[0]}, synchronous_commit=${rows[0].sync}, shared_buffers=${rows[0].sb}`)
  await admin.end()
  const url = new URL(PG_URL)
  url.pathname = `/${DB}`
  const c = new pg.Client({ connectionString: url.toString() })
  await c.connect()
  await c.query(SCHEMA)
  await c.end()
  return url.toString()
}

/** A separate process that takes the client's requests: the collector's stand-in. */
async function startSink(): Promise<{ url: string; stop(): void }> {
  const code = `
    const http = require('node:http')
    let n = 0
    const s = http.createServer((req, res) => {
      req.on('data', () => {}).on('end', () => { n++; res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"accepted":0,"rejected":0,"errors":[]}') })
    })
    s.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ url: 'http://127.0.0.1:' + s.address().port })))
    process.on('SIGTERM', () => {
      const cpu = process.cpuUsage()
      console.error('sink: ' + n + ' requests, ' + ((cpu.user + cpu.system) / 1000).toFixed(0) + ' ms of CPU')
      process.exit(0)
    })`
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line).url)),
  )
  return { url, stop: () => child.kill('SIGTERM') }
}

async function transaction(c: pg.PoolClient, setup: Setup, n: number): Promise<void> {
  // b and c share the one trigger-free table, so nothing but the SDK differs between them.
  const table = setup === 'a1' || setup === 'a4' ? `orders_${setup}` : 'orders'
  const insert = `INSERT INTO ${table} (customer, total) VALUES ($1, $2) RETURNING id`
  const update = `UPDATE ${table} SET status = 'paid', total = total + 1 WHERE id = $1`
  await c.query('BEGIN')
  if (setup === 'b') {
    const { rows } = await withDatabaseLogging('insert', table, undefined, () => c.query(insert, [`customer-${n}`, n % 1000]), 'u-1')
    await withDatabaseLogging('update', table, rows[0].id, () => c.query(update, [rows[0].id]), 'u-1')
  } else {
    const { rows } = await c.query(insert, [`customer-${n}`, n % 1000])
    await c.query(update, [rows[0].id])
  }
  await c.query('COMMIT')
}

/**
 * Each run starts from the same state: the triggers' extra WAL and dead rows
 * from one setup must not be flushed or vacuumed during the next one's
 * measurement (they are, without this, and land on whichever setup follows
 * a4). A setup's own checkpoints and vacuums during its run are its cost.
 */
async function settle(pool: pg.Pool): Promise<void> {
  await pool.query('VACUUM ANALYZE orders_a1, orders_a4, orders, audit_logs, activity_rows')
  await pool.query('CHECKPOINT')
}

/** Transactions per second, and this process's CPU meanwhile (% of one core): the app's side of the setup. */
async function run(pool: pg.Pool, setup: Setup, seconds: number): Promise<{ tps: number; appCpu: number }> {
  await settle(pool)
  await getActivityClient().forceFlush()
  const cpu0 = process.cpuUsage()
  const deadline = performance.now() + seconds * 1000
  let done = 0
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const c = await pool.connect()
      try {
        while (performance.now() < deadline) await transaction(c, setup, done++)
      } finally {
        c.release()
      }
    }),
  )
  const cpu = process.cpuUsage(cpu0)
  return { tps: done / seconds, appCpu: (cpu.user + cpu.system) / seconds / 1e4 }
}

async function triggerVsSdk(): Promise<Record<Setup, number[]>> {
  const url = await createDatabase()
  const sink = await startSink()
  const client = configureActivityLogging({ endpoint: sink.url })
  const pool = new pg.Pool({ connectionString: url, max: CLIENTS })
  const results: Record<Setup, number[]> = { a1: [], a4: [], b: [], c: [], c2: [] }
  try {
    log(`warm-up: 2 s per setup, ${CLIENTS} clients`)
    for (const s of SETUPS) await run(pool, s, 2)
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotated each round, so no setup always runs first (or after the heaviest).
      const order = SETUPS.map((_, i) => SETUPS[(i + round) % SETUPS.length]!)
      const line: string[] = []
      for (const s of order) {
        const { tps, appCpu } = await run(pool, s, SECONDS)
        results[s].push(tps)
        line.push(`${s} ${tps.toFixed(0)} (app cpu ${appCpu.toFixed(0)}%)`)
      }
      log(`round ${round}/${ROUNDS}: ${line.join(', ')} tx/s`)
    }
    await client.forceFlush()
    const st = client.stats
    log(`SDK client: ${st.sent} activities sent, ${st.dropped} dropped, ${st.rejected} rejected, ${st.retries} retries`)
    const c = await pool.connect()
    const { rows } = await c.query(`SELECT (SELECT count(*) FROM audit_logs) AS audit, (SELECT pg_size_pretty(pg_total_relation_size('audit_logs'))) AS size`)
    log(`audit_logs after the run: ${rows[0].audit} rows, ${rows[0].size}`)
    c.release()
  } finally {
    await pool.end()
    await client.shutdown()
    sink.stop()
  }
  return results
}

/** Waits until the logging client holds at most `max` activities. */
async function drained(max: number): Promise<void> {
  while (getActivityClient().stats.queued > max) await new Promise((r) => setTimeout(r, 1))
}

/** ns per call: median over samples of 1,000 calls; the client ships between samples. */
async function hotPath(inSpan: boolean): Promise<number> {
  const tracer = trace.getTracer('bench')
  const samples: number[] = []
  const sample = () => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < 1000; i++) logUserAction('user.login', { actorId: 'u-123', entityType: 'session', entityId: 's-9' })
    samples.push(Number(process.hrtime.bigint() - t0) / 1000)
  }
  for (let i = 0; i < 300; i++) {
    if (inSpan) tracer.startActiveSpan('request', (span) => (sample(), span.end()))
    else sample()
    // Let the client ship before the next sample: a full queue (dropping) is not the path measured.
    await drained(2000)
  }
  return median(samples.slice(50)) // the first samples warm the JIT
}

async function sdkCosts(): Promise<void> {
  const sink = await startSink()
  const client = configureActivityLogging({ endpoint: sink.url })
  try {
    const bare = await hotPath(false)
    const provider = new node.NodeTracerProvider()
    provider.register()
    const inSpan = await hotPath(true)
    log(`logUserAction hot path: median ${(bare / 1000).toFixed(2)} µs per call, ${(inSpan / 1000).toFixed(2)} µs inside an active span (target < 2 µs)`)

    // Everything an activity costs this process: the call, then JSON, gzip and the POST.
    await client.forceFlush()
    const n = 200_000
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const dropped0 = client.stats.dropped
    for (let i = 0; i < n; i++) {
      logUserAction('user.login', { actorId: 'u-123', entityType: 'session', entityId: 's-9' })
      if (i % 1000 === 999) await drained(5000)
    }
    await client.forceFlush()
    const cpu = process.cpuUsage(cpu0)
    log(`all-in: ${n} activities shipped in ${((performance.now() - t0) / 1000).toFixed(1)} s, ` +
      `${((cpu.user + cpu.system) / n).toFixed(2)} µs of CPU each (call + JSON + gzip + POST); dropped ${client.stats.dropped - dropped0}`)
    await provider.shutdown()
  } finally {
    await client.shutdown()
    sink.stop()
  }

  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) return log('queued memory: skipped (run with --expose-gc, as npm run bench:overhead does)')
  // Nothing listens there and the interval is long: everything stays queued.
  const queued = configureActivityLogging(
    new ActivityClient({ endpoint: 'http://127.0.0.1:9', flushIntervalMs: 3_600_000, maxBatchSize: 100_000, onError: () => {} }),
  )
  const tracer = trace.getTracer('bench')
  gc()
  const before = process.memoryUsage().heapUsed
  tracer.startActiveSpan('request', (span) => {
    for (let i = 0; i < 5000; i++) {
      logUserAction('invoice.paid', {
        actorId: `u-${i % 500}`, entityType: 'invoice', entityId: `inv-${100000 + i}`, category: 'billing',
        details: { amount: i / 100, currency: 'EUR' },
      })
    }
    span.end()
  })
  gc()
  const after = process.memoryUsage().heapUsed
  log(`5,000 queued activities: ${((after - before) / 1024 / 1024).toFixed(2)} MB of heap, ${((after - before) / 5000).toFixed(0)} bytes each (target < 5 MB); queued ${queued.stats.queued}`)
  await queued.shutdown(1)
}

async function main() {
  log(`machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`)
  log(`trigger vs SDK: ${ROUNDS} rounds x ${SECONDS} s per setup, ${CLIENTS} clients, each tx = INSERT + UPDATE of one row`)
  const r = await triggerVsSdk()
  const m = Object.fromEntries((['a1', 'a4', 'b', 'c', 'c2'] as Setup[]).map((s) => [s, r[s].length ? median(r[s]) : NaN])) as Record<Setup, number>
  const paired = (x: Setup, y: Setup) => (r[x].length && r[y].length ? median(r[x].map((v, i) => v / r[y][i]!)) : NaN)
  console.log('\nmedian tx/s (each = INSERT + UPDATE):')
  console.log(`  a1 one audit trigger:   ${m.a1.toFixed(0)}`)
  console.log(`  a4 four triggers:       ${m.a4.toFixed(0)}`)
  console.log(`  b  SDK, no trigger:     ${m.b.toFixed(0)}`)
  console.log(`  c  nothing:             ${m.c.toFixed(0)}`)
  console.log('ratios (median of per-round ratios):')
  console.log(`  b / c  = ${paired('b', 'c').toFixed(3)}  (target >= 0.95; per round ${r.b.map((v, i) => (v / r.c[i]!).toFixed(2)).join(', ')})`)
  console.log(`  b / a1 = ${paired('b', 'a1').toFixed(3)}  (target >= 1.2)`)
  console.log(`  b / a4 = ${paired('b', 'a4').toFixed(3)}  (target >= 1.6)`)
  // c2 is c again: how far apart two identical setups land is the noise floor of every ratio above.
  const aa = r.c.map((v, i) => r.c2[i]! / v)
  console.log(`  c2 / c = ${paired('c2', 'c').toFixed(3)}  (A/A: the same setup twice; per round ${aa.map((x) => x.toFixed(2)).join(', ')})`)
  console.log('')
  await sdkCosts()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
