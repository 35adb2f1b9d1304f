/**
 * What capture costs the app's writes, side by side in one run on the real
 * server: pgbench transactions (UPDATE an account's balance, INSERT a
 * history row; the simple protocol, which the message's round trip with BEGIN needs) from BENCH_CLIENTS connections (1 and 4), for
 * BENCH_WRITE_SECONDS per variant, in BENCH_ROUNDS rounds so every variant
 * sees the same noise:
 *
 * - none: tables in no publication, no slot read;
 * - trigger: one classic audit trigger (AFTER ... FOR EACH ROW, to_jsonb(OLD)
 *   and to_jsonb(NEW) into an audit table), what teams are removing;
 * - session_context trigger: receivers.postgres_cdc.session_context's
 *   statement-level trigger alone (its message, no table written, no reader);
 * - cdc: the tables published and the slot read, by pg_recvlogical (the
 *   server's own cost: WAL decoding in the walsender) and by the collector;
 * - + message: the same, with the context message after BEGIN (what the
 *   register hook's tagging sends).
 *
 * The collector runs on the same 2 cores as the server and pgbench: what it
 * spends storing the changes in its embedded stores is part of what
 * "read by the collector" costs here, and would run elsewhere in production.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { installSessionFunction, sessionTriggerSql } from '../collector/receivers/postgres-cdc/setup.ts'
import { startCollector } from './collector-process.ts'
import { median } from './query-scenarios.ts'

// One connection: the latency an app's transaction sees, with a core to spare for the walsender. Four: both cores saturated, where any CPU capture spends is throughput lost.
const CLIENT_COUNTS = (process.env.BENCH_CLIENTS ?? '1,4').split(',').map(Number)
const SECONDS = Number(process.env.BENCH_WRITE_SECONDS ?? 8)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const ACCOUNTS = 10_000

const VARIANTS = [
  'none', 'trigger', 'session_context trigger', 'cdc, read by pg_recvlogical', '+ message, pg_recvlogical', 'cdc, read by the collector', '+ message, the collector',
] as const
type Variant = (typeof VARIANTS)[number]
const tablesOf = (v: Variant) => (v === 'none' ? 'plain' : v === 'trigger' ? 'trg' : v === 'session_context trigger' ? 'ses' : 'cap')

async function schema(client: pg.Client) {
  for (const prefix of ['plain', 'trg', 'ses', 'cap']) {
    await client.query(`CREATE TABLE ${prefix}_accounts (id int PRIMARY KEY, balance int NOT NULL DEFAULT 0, filler text NOT NULL DEFAULT repeat('x', 84))`)
    await client.query(`INSERT INTO ${prefix}_accounts (id) SELECT g FROM generate_series(1, ${ACCOUNTS}) AS g`)
    await client.query(`CREATE TABLE ${prefix}_history (id bigserial PRIMARY KEY, account int NOT NULL, delta int NOT NULL, at timestamptz NOT NULL DEFAULT now())`)
  }
  await client.query(`CREATE TABLE legacy_audit (id bigserial PRIMARY KEY, table_name text, operation text, old_row jsonb, new_row jsonb, changed_by text DEFAULT current_user, changed_at timestamptz DEFAULT now())`)
  await client.query(`CREATE FUNCTION legacy_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO legacy_audit (table_name, operation, old_row, new_row)
      VALUES (TG_TABLE_NAME, TG_OP, CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END, CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
      RETURN NULL;
    END $$`)
  for (const t of ['trg_accounts', 'trg_history']) await client.query(`CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION legacy_audit()`)
  // receivers.postgres_cdc.session_context's own trigger, on tables no reader reads: its cost alone.
  await installSessionFunction(client)
  for (const t of ['ses_accounts', 'ses_history']) await client.query(sessionTriggerSql(t))
}

/** Transactions per second of one variant: pgbench, `clients` connections for SECONDS. */
async function run(db: string, dir: string, variant: Variant, clients: number): Promise<number> {
  const t = tablesOf(variant)
  const script = join(dir, `${t}-${variant.startsWith('+') ? 'message' : 'plain'}.sql`)
  writeFileSync(script, [
    `\\set aid random(1, ${ACCOUNTS})`,
    '\\set delta random(-5000, 5000)',
    // The tagging's form: the message goes with BEGIN, in one round trip.
    variant.startsWith('+') ? `BEGIN \\; SELECT pg_logical_emit_message(true, 'actline', '{"actor_id":"u-42","trace_id":"${'ab'.repeat(16)}"}');` : 'BEGIN;',
    `UPDATE ${t}_accounts SET balance = balance + :delta WHERE id = :aid;`,
    `INSERT INTO ${t}_history (account, delta) VALUES (:aid, :delta);`,
    'END;',
  ].join('\n') + '\n')
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('pgbench', ['-n', '-M', 'simple', '-c', String(clients), '-j', String(Math.min(2, clients)), '-T', String(SECONDS), '-f', script, db], { stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    p.stdout.on('data', (c) => (text += c))
    p.stderr.on('data', (c) => (text += c))
    p.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`pgbench exited with ${code}: ${text.slice(-500)}`))))
  })
  const tps = /tps = ([\d.]+)/.exec(out)
  if (!tps) throw new Error(`pgbench printed no tps: ${out.slice(-500)}`)
  return Number(tps[1])
}

/** pg_recvlogical reading the slot with pgoutput into /dev/null, confirming as it goes. */
function recvlogical(db: string, slot: string): ChildProcess {
  return spawn('pg_recvlogical', ['-d', db, '--slot', slot, '--start', '-o', 'proto_version=1', '-o', `publication_names=${slot}`, '-f', '/dev/null', '-F', '1', '-s', '1', '--no-loop'], { stdio: 'ignore' })
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
}

export async function writePath(db: string, dir: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: db })
  await admin.connect()
  let collector: Awaited<ReturnType<typeof startCollector>> | undefined
  // Left running, a reader holds its slot (and so the database) and decodes every later run's WAL.
  let reader: ChildProcess | undefined
  try {
    await schema(admin)
    const configFile = join(dir, 'write-path.yaml')
    const slot = `${name}_w`
    writeFileSync(configFile, `data_dir: ${join(dir, 'write-path-data')}\nserver: { port: 0, log_level: warn }\nreceivers: { postgres_cdc: { enabled: true, url: "${db}", tables: [public.cap_accounts, public.cap_history], slot: ${slot}, publication: ${slot} } }\n`)
    // The collector makes the publication and the slot; pg_recvlogical reads the same ones.
    await stop((collector = await startCollector(configFile)).child)
    collector = undefined
    console.log(`write path: pgbench, ${CLIENT_COUNTS.join(' and ')} connections, UPDATE + INSERT per transaction, ${SECONDS} s per variant, ${ROUNDS} rounds`)
    const key = (v: Variant, c: number) => `${v} @${c}`
    const tps = new Map<string, number[]>()
    const measure = async (variants: readonly Variant[]) => {
      for (const c of CLIENT_COUNTS) for (const v of variants) {
        const k = key(v, c)
        tps.set(k, [...(tps.get(k) ?? []), await run(db, dir, v, c)])
      }
    }
    const lag = async () => Number((await admin.query(`SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::float8 AS lag FROM pg_replication_slots WHERE slot_name = $1`, [slot])).rows[0].lag)
    // What a stopped reader missed is decoded first: measure from a caught-up slot.
    const caughtUp = async () => {
      const t0 = performance.now()
      while ((await lag()) > 256 * 1024 && performance.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 250))
    }
    for (let round = 1; round <= ROUNDS; round++) {
      // Without capture the slot is not read at all: no walsender decodes.
      await measure(['none', 'trigger', 'session_context trigger'])
      reader = recvlogical(db, slot)
      await caughtUp()
      await measure(['cdc, read by pg_recvlogical', '+ message, pg_recvlogical'])
      await stop(reader)
      reader = undefined
      collector = await startCollector(configFile)
      await caughtUp()
      await measure(['cdc, read by the collector', '+ message, the collector'])
      await stop(collector.child)
      collector = undefined
      process.stderr.write(`  round ${round}/${ROUNDS}: ${[...tps].map(([k, v]) => `${k} ${Math.round(v.at(-1)!)}`).join(', ')} tx/s\n`)
    }
    console.log(`${'variant'.padEnd(28)} ${CLIENT_COUNTS.map((c) => `${c} conn: median tx/s   vs none`.padStart(34)).join('')}`)
    for (const v of VARIANTS) {
      const cells = CLIENT_COUNTS.map((c) => {
        const m = median(tps.get(key(v, c))!)
        const base = median(tps.get(key('none', c))!)
        return `${Math.round(m).toLocaleString('en-US').padStart(22)}   ${v === 'none' ? '       ' : `${((m / base - 1) * 100).toFixed(1)}%`.padStart(7)}`
      })
      console.log(`${v.padEnd(28)} ${cells.join('  ')}`)
    }
  } finally {
    if (reader) await stop(reader)
    if (collector) await stop(collector.child)
    await admin.end()
  }
}
