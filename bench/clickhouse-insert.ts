/**
 * `npm run bench:clickhouse-insert`: what a row costs the embedded ClickHouse
 * by how it is fed (issue 16, part 3), side by side in one run: the real
 * schema (activities and its four rollup views), bench:ingest's event mix,
 * each form at each batch size, the forms interleaved insert by insert;
 * CPU time of the process per row (chDB runs in it: the encoding, the
 * engine's parse, the part written and every view's part, and the merges
 * they cause), median over BENCH_ROUNDS. Each form writes its own database
 * (the schema and its views), with background merges stopped, so a merge
 * that one form's parts started is not charged to the next form's insert;
 * what bigger inserts save in merges comes on top.
 *
 * Forms: the exporter's path before issue 16 (the client's exec, whose chDB
 * connection concatenates the SQL and the body into one string), the chDB
 * connection's raw insert of a Buffer in the same format, the same in
 * TabSeparated, and the raw table without its rollup views (what the views
 * cost per insert). chDB's raw insert takes text formats only, so RowBinary,
 * Native and Arrow cannot be fed to the embedded engine today.
 *
 *   npm run bench:clickhouse-insert     # BENCH_SIZES=5000,10000,50000,100000 BENCH_ROUNDS=7
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { createClient } from '@clickhouse/client'
import { createChdbConnection } from 'chdb/connection'
import { parseActivity, type Activity } from '../schemas/activity.ts'
import { ROW_COLUMNS } from '../schemas/activity-row.ts'
import { sqlOf } from '../schemas/migrations.ts'
import { clickhouseMigrations } from '../schemas/clickhouse-schema.ts'
import { toRow } from '../exporters/clickhouse/exporter.ts'
import { toTsvRow } from './tsv-row.ts'
import { makeEvents } from './load-generator.ts'
import { median } from './query-scenarios.ts'

const SIZES = (process.env.BENCH_SIZES ?? '5000,10000,50000,100000').split(',').map(Number)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const DB = 'bench'
const SETTINGS = 'max_threads = 1, max_insert_threads = 1, os_thread_priority = 10'

type Feed = (database: string, rows: Activity[], token: string) => Promise<void>

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'actline-bench-ch-'))
  const connection = createChdbConnection({ path: dir })
  const client = createClient({ connection } as never)
  const raw = (connection as unknown as { chdb: { rawInsert(p: object): Promise<unknown> } }).chdb
  try {
    await client.command({ query: 'SYSTEM STOP MERGES' })
    for (let i = 0; i < 4; i++) {
      await client.command({ query: `CREATE DATABASE ${DB}${i}` })
      // The last one holds the raw table only: what the views cost per insert.
      for (const m of clickhouseMigrations.slice(0, i === 3 ? 1 : undefined)) for (const st of m.statements({ database: `${DB}${i}`, ttlDays: 0 })) await client.command({ query: sqlOf(st) })
    }
    const largest = Math.max(...SIZES)
    const activities: Activity[] = []
    for (let seed = 0; activities.length < largest; seed++) {
      for (const text of makeEvents(1000, seed)) {
        const r = parseActivity(JSON.parse(text), Date.now())
        if (r.ok) activities.push(r.activity)
      }
    }
    const columns = ROW_COLUMNS.join(', ')
    const json = (rows: Activity[]) => rows.map((a) => JSON.stringify(toRow(a))).join('\n')
    const FORMS: Record<string, Feed> = {
      "client exec, JSONCompactEachRow (the exporter before)": async (database, rows, token) => {
        const { stream } = await client.exec({
          query: `INSERT INTO ${database}.activities (${columns}) SETTINGS insert_deduplication_token = '${token}', ${SETTINGS} FORMAT JSONCompactEachRow`,
          values: Readable.from([json(rows)]),
        })
        stream.destroy()
      },
      'raw insert of a Buffer, JSONCompactEachRow': async (database, rows, token) => {
        await raw.rawInsert({ table: `${database}.activities`, columns: ROW_COLUMNS, format: 'JSONCompactEachRow', values: Buffer.from(json(rows)), settings: settingsOf(token) })
      },
      'raw insert of a Buffer, TabSeparated': async (database, rows, token) => {
        await raw.rawInsert({ table: `${database}.activities`, columns: ROW_COLUMNS, format: 'TabSeparated', values: Buffer.from(rows.map(toTsvRow).join('\n')), settings: settingsOf(token) })
      },
    }
    const PLAIN = 'no rollup views, raw insert JSONCompactEachRow'
    console.log(`bench:clickhouse-insert: embedded chDB in process, batch sizes ${SIZES.join(', ')}, ${ROUNDS} rounds, forms interleaved`)
    const times = new Map<string, number[]>()
    let token = 0
    for (let round = 0; round < ROUNDS; round++) {
      for (const size of SIZES) {
        const rows = activities.slice(0, size)
        const forms = [...Object.entries(FORMS), [PLAIN, FORMS['raw insert of a Buffer, JSONCompactEachRow']!] as const]
        // Rotated each round, so the machine's drift falls on every form alike.
        for (let f = 0; f < forms.length; f++) {
          const i = (f + round) % forms.length
          const [name, feed] = forms[i]!
          const cpu = process.cpuUsage()
          await feed(`${DB}${i}`, rows, `bench-${token++}`)
          const used = process.cpuUsage(cpu)
          const key = `${name}|${size}`
          times.set(key, [...(times.get(key) ?? []), (used.user + used.system) / size])
        }
      }
      process.stdout.write(`  round ${round + 1}/${ROUNDS} done\n`)
    }
    const expected = ROUNDS * SIZES.reduce((s, n) => s + n, 0)
    for (let i = 0; i < 4; i++) {
      const stored = await (await client.query({ query: `SELECT count() AS n FROM ${DB}${i}.activities`, format: 'JSONEachRow' })).json<{ n: string }>()
      if (Number(stored[0]!.n) !== expected) throw new Error(`${DB}${i} stored ${stored[0]!.n} rows, expected ${expected}`)
    }
    const base = (size: number) => median(times.get(`${Object.keys(FORMS)[0]}|${size}`)!)
    console.log(`\n| form | ${SIZES.map((s) => `${s.toLocaleString('en-US')} rows`).join(' | ')} |`)
    console.log(`| --- | ${SIZES.map(() => '---:').join(' | ')} |`)
    for (const name of [...Object.keys(FORMS), PLAIN]) {
      const cells = SIZES.map((s) => {
        const us = median(times.get(`${name}|${s}`)!)
        return `${us.toFixed(1)} µs (${(us / base(s)).toFixed(2)}x)`
      })
      console.log(`| ${name} | ${cells.join(' | ')} |`)
    }
    console.log(`\nCPU µs per row, median of ${ROUNDS}; the ratio is against the first form at the same size. ${expected.toLocaleString('en-US')} rows checked stored per form.`)
  } finally {
    await client.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

function settingsOf(token: string) {
  return { insert_deduplication_token: token, max_threads: 1, max_insert_threads: 1, os_thread_priority: 10 }
}

await main()
