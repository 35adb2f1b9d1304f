/**
 * `npm run bench:audit-insert`: what one audited row costs PGlite, by the
 * form of the insert, side by side in one run (issue 16, part 4). The real
 * audit_log DDL (partitioned, 4 indexes), bench:ingest's event mix through
 * the exporter's own row encoder, BENCH_BATCHES batches of BENCH_BATCH rows
 * per form, the forms interleaved batch by batch (all without the hash
 * chain, whose cost bench:audit-chain measures); CPU time of the process
 * (PGlite runs in it here) per row, median over the batches. The floors
 * (tables without indexes or partitions, and COPY) say what PGlite itself
 * costs; they are not forms the audit trail could use (it needs the
 * conflict check: a re-sent row is stored once).
 *
 *   npm run bench:audit-insert     # BENCH_BATCH=5000 BENCH_BATCHES=8
 *
 * With PG_URL set it then does the same on the real server (a scratch
 * database): the exporter's insert against COPY (text) into a temporary
 * table and INSERT ... SELECT ... ON CONFLICT from it, in one transaction
 * (COPY alone cannot skip a re-sent row); CPU of the server's backend (from
 * /proc: the server runs on this machine) and of this process, per row.
 */
import { readFileSync } from 'node:fs'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { createScratchDatabase } from '../test/helpers/stores.ts'
import { parseActivity, type Activity } from '../schemas/activity.ts'
import { ACTIVITY_ROW, postgresColumn } from '../schemas/activity-row.ts'
import { isStep, sqlOf } from '../schemas/migrations.ts'
import { isoRowEncoder } from '../exporters/encoding.ts'
import { PG_TYPE } from '../exporters/postgres/json-insert.ts'
import { PLAIN_INSERT_SQL as INSERT_SQL, plainCopyInsert } from './unchained-insert.ts'
import { partitionDdl, postgresMigrations } from '../schemas/postgres-schema.ts'
import { makeEvents } from './load-generator.ts'
import { median } from './query-scenarios.ts'

const BATCH = Number(process.env.BENCH_BATCH ?? 5000)
const BATCHES = Number(process.env.BENCH_BATCHES ?? 8)

const NAMES = ACTIVITY_ROW.map(postgresColumn).join(', ')
const COLUMNS = (json: 'json' | 'jsonb') => ACTIVITY_ROW.map((f) => `${postgresColumn(f)} ${PG_TYPE[f.kind] === 'jsonb' ? json : PG_TYPE[f.kind]}`).join(', ')
const toRow = isoRowEncoder(postgresColumn)

const FORMS = {
  'jsonb_to_recordset (before issue 16)': (rows: string) => [`INSERT INTO audit_log (${NAMES}) SELECT ${NAMES} FROM jsonb_to_recordset($1::jsonb) AS r(${COLUMNS('jsonb')}) ON CONFLICT (id, occurred_at) DO NOTHING`, [rows]] as const,
  "json_to_recordset (the exporter's form, unchained)": (rows: string) => [INSERT_SQL, [rows]] as const,
  'primary key only (no secondary index)': (rows: string) => [INSERT_SQL.replace('INSERT INTO audit_log', 'INSERT INTO audit_pk'), [rows]] as const,
  'floor: no index, no partition, no conflict check': (rows: string) => [INSERT_SQL.replace('INSERT INTO audit_log', 'INSERT INTO audit_plain').replace(/ON CONFLICT[^]*$/, ''), [rows]] as const,
  'floor: COPY csv from a blob, no index, no partition': (rows: string) => ['', [rows]] as const,
}

async function main() {
  const activities: Activity[] = []
  for (let seed = 0; activities.length < BATCH * BATCHES * Object.keys(FORMS).length; seed++) {
    for (const text of makeEvents(1000, seed)) {
      const r = parseActivity(JSON.parse(text), Date.now())
      if (r.ok) activities.push(r.activity)
    }
  }
  const db = await PGlite.create()
  for (const m of postgresMigrations) for (const st of m.statements({})) if (!isStep(st)) await db.exec(sqlOf(st))
  for (const ms of new Set(activities.map((a) => partitionDdl(a.timestamp).sql))) await db.exec(ms)
  await db.exec(`CREATE TABLE audit_plain (LIKE audit_log INCLUDING DEFAULTS)`)
  await db.exec(`CREATE TABLE audit_pk (LIKE audit_log INCLUDING DEFAULTS, PRIMARY KEY (id, occurred_at)) PARTITION BY RANGE (occurred_at)`)
  for (const ms of new Set(activities.map((a) => partitionDdl(a.timestamp).sql.replaceAll('audit_log', 'audit_pk')))) await db.exec(ms)
  console.log(`bench:audit-insert: PGlite in process, ${BATCHES} batches of ${BATCH.toLocaleString('en-US')} rows per form, interleaved`)
  const times = Object.fromEntries(Object.keys(FORMS).map((f) => [f, [] as number[]])) as Record<keyof typeof FORMS, number[]>
  let next = 0
  for (let b = 0; b < BATCHES; b++) {
    for (const form of Object.keys(FORMS) as (keyof typeof FORMS)[]) {
      const batch = activities.slice(next, (next += BATCH))
      const cpu = process.cpuUsage()
      if (form === 'floor: COPY csv from a blob, no index, no partition') {
        const csv = batch.map((a) => { const r = toRow(a) as Record<string, unknown>; return ACTIVITY_ROW.map((f) => { const v = r[postgresColumn(f)]; return v === undefined || v === null ? '' : `"${(typeof v === 'object' ? JSON.stringify(v) : String(v)).replaceAll('"', '""')}"` }).join(',') }).join('\n')
        await db.query(`COPY audit_plain (${NAMES}) FROM '/dev/blob' WITH (FORMAT csv)`, [], { blob: new Blob([csv]) })
      } else {
        const [sql, params] = FORMS[form as keyof typeof FORMS](`[${batch.map((a) => JSON.stringify(toRow(a))).join(',')}]`)
        await db.query(sql, [...params])
      }
      const used = process.cpuUsage(cpu)
      times[form].push(((used.user + used.system) / BATCH))
    }
    process.stderr.write(`  batch ${b + 1}/${BATCHES}: ${Object.entries(times).map(([f, t]) => `${f} ${t.at(-1)!.toFixed(1)} µs/row`).join(', ')}\n`)
  }
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log')
  // Both audit_log forms store every row they were given.
  if (rows[0]!.n !== 2 * BATCH * BATCHES) throw new Error(`audit_log holds ${rows[0]!.n} rows, not ${2 * BATCH * BATCHES}`)
  const base = median(times['jsonb_to_recordset (before issue 16)'])
  for (const [form, t] of Object.entries(times)) console.log(`${form.padEnd(52)} ${median(t).toFixed(1).padStart(7)} µs/row   ${(median(t) / base).toFixed(2)}x`)
  await db.close()
  if (process.env.PG_URL) await server(activities)
}

/** CPU ms the server's backend `pid` has used (it runs on this machine). */
function backendCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

async function server(activities: Activity[]) {
  const scratch = await createScratchDatabase()
  const client = new pg.Client({ connectionString: scratch.url })
  await client.connect()
  try {
    for (const m of postgresMigrations) for (const st of m.statements({})) if (!isStep(st)) await client.query(sqlOf(st))
    for (const ms of new Set(activities.map((a) => partitionDdl(a.timestamp).sql))) await client.query(ms)
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
    const SERVER_FORMS: Record<string, (batch: Activity[]) => Promise<void>> = {
      "json_to_recordset (the exporter's form, unchained)": async (batch) => {
        await client.query(INSERT_SQL, [`[${batch.map((a) => JSON.stringify(toRow(a))).join(',')}]`])
      },
      "COPY into a staging table, then INSERT ... ON CONFLICT (copy.ts, unchained)": (batch) => plainCopyInsert(client, batch),
    }
    console.log(`\nThe PostgreSQL server (${(await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version}), ${BATCHES} batches of ${BATCH.toLocaleString('en-US')} rows per form, interleaved:`)
    const times: Record<string, { server: number[]; client: number[] }> = Object.fromEntries(Object.keys(SERVER_FORMS).map((f) => [f, { server: [], client: [] }]))
    let next = 0
    for (let b = 0; b < BATCHES; b++) {
      for (const [form, run] of Object.entries(SERVER_FORMS)) {
        const batch = activities.slice(next % activities.length, (next % activities.length) + BATCH)
        next += BATCH
        const cpu = process.cpuUsage()
        const before = backendCpuMs(pid)
        await run(batch)
        const used = process.cpuUsage(cpu)
        times[form]!.server.push(((backendCpuMs(pid) - before) * 1000) / BATCH)
        times[form]!.client.push((used.user + used.system) / BATCH)
      }
    }
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM audit_log')
    if (Number(rows[0]!.n) !== BATCH * BATCHES * 2) throw new Error(`audit_log holds ${rows[0]!.n} rows, not ${BATCH * BATCHES * 2}`)
    const base = median(Object.values(times)[0]!.server) + median(Object.values(times)[0]!.client)
    for (const [form, t] of Object.entries(times)) {
      const all = median(t.server) + median(t.client)
      console.log(`${form.padEnd(64)} server ${median(t.server).toFixed(1).padStart(6)} + collector ${median(t.client).toFixed(1).padStart(5)} = ${all.toFixed(1).padStart(6)} µs/row   ${(all / base).toFixed(2)}x`)
    }
  } finally {
    await client.end()
    await scratch.drop()
  }
}

await main()
