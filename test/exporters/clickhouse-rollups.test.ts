/**
 * The rollups on the embedded engine: filled by their views as rows arrive,
 * never double-counting a retried batch, and backfilled when they are added
 * to a store that already holds rows.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { createClient } from '@clickhouse/client'
import { createChdbConnection } from 'chdb/connection'
import { parseActivity, type Activity } from '../../schemas/activity.ts'
import { actorsSketch, clickhouseMigrations, MIGRATIONS_TABLE, ROLLUPS, type Rollup } from '../../schemas/clickhouse-schema.ts'
import { sqlOf } from '../../schemas/migrations.ts'
import { ClickHouseExporterConfig } from '../../exporters/clickhouse/config.ts'
import { createClickHouseExporter } from '../../exporters/clickhouse/exporter.ts'
import { syntheticInsertSql } from '../helpers/synthetic.ts'
import { tempDir } from '../helpers/stores.ts'

const logger = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} }

function activities(n: number): Activity[] {
  return Array.from({ length: n }, (_, i) => {
    const r = parseActivity({ action: 'rollup.item', source: 'user', actor_id: `a${i % 7}`, duration_ms: i, status: i % 4 ? 'success' : 'failure' })
    if (!r.ok) throw new Error('bad fixture')
    return r.activity
  })
}

type Query = (sql: string) => Promise<Record<string, unknown>[]>

async function rollupTotals(query: Query, rollup: Rollup): Promise<{ events: number; failures: number; actors: number }> {
  const [r] = await query(`SELECT sum(events) AS events, sum(failures) AS failures, ${actorsSketch(rollup.actors, 'Merge', 'actors')} AS actors FROM actline.${rollup.table}`)
  return { events: Number(r!.events), failures: Number(r!.failures), actors: Number(r!.actors) }
}

describe('clickhouse rollups', () => {
  const dirs: { remove(): void }[] = []
  afterAll(() => dirs.forEach((d) => d.remove()))

  it('count each row once at every grain, even when a batch is retried', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const exporter = createClickHouseExporter({ ...ClickHouseExporterConfig.parse({}), path: dir.path }, logger)
    await exporter.start()
    try {
      const rows = activities(400)
      expect(await exporter.export(rows)).toEqual({ status: 'success' })
      expect(await exporter.export(rows)).toEqual({ status: 'success' }) // the retry
      const query: Query = async (sql) => (await exporter.client().query({ query: sql, format: 'JSONEachRow' })).json()
      for (const rollup of ROLLUPS) expect(await rollupTotals(query, rollup), rollup.table).toEqual({ events: 400, failures: 100, actors: 7 })
    } finally {
      await exporter.shutdown()
    }
  })

  it('backfill, month by month and with progress, when added to a store that has rows', async () => {
    const dir = tempDir()
    dirs.push(dir)
    // A store as the first release left it: migration 1 only, three months of rows.
    const old = createClient({ connection: createChdbConnection({ path: dir.path }) } as never)
    await old.command({ query: 'CREATE DATABASE IF NOT EXISTS actline' })
    for (const s of clickhouseMigrations[0]!.statements({ database: 'actline', ttlDays: 0 })) await old.command({ query: sqlOf(s) })
    await old.command({ query: `CREATE TABLE actline.${MIGRATIONS_TABLE} (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version` })
    await old.insert({ table: `actline.${MIGRATIONS_TABLE}`, values: [{ version: 1, name: 'create activities' }], format: 'JSONEachRow' })
    await old.command({ query: syntheticInsertSql({ database: 'actline', rows: 20_000, endMs: Date.parse('2026-04-01T00:00:00Z'), days: 90 }) })
    const [raw] = await (
      await old.query({ query: "SELECT count() AS n, countIf(status = 'failure') AS f FROM actline.activities", format: 'JSONEachRow' })
    ).json<{ n: string; f: string }>()
    await old.close()

    const progress: string[] = []
    const exporter = createClickHouseExporter({ ...ClickHouseExporterConfig.parse({}), path: dir.path }, { ...logger, info: (_o: unknown, msg?: string) => msg && progress.push(msg) })
    await exporter.start()
    try {
      const query: Query = async (sql) => (await exporter.client().query({ query: sql, format: 'JSONEachRow' })).json()
      for (const rollup of ROLLUPS) {
        // Unique actors as the rollup's own sketch counts the raw rows: merging states must not change it.
        const [a] = await query(`SELECT ${actorsSketch(rollup.actors, 'If', "actor_id, actor_id != ''")} AS a FROM actline.activities`)
        expect(await rollupTotals(query, rollup), rollup.table).toEqual({ events: Number(raw!.n), failures: Number(raw!.f), actors: Number(a!.a) })
      }
      expect(progress.filter((m) => m.includes('backfilling activities_by_day:'))).toEqual([
        'clickhouse: backfilling activities_by_day: month 202601 (1/3)',
        'clickhouse: backfilling activities_by_day: month 202602 (2/3)',
        'clickhouse: backfilling activities_by_day: month 202603 (3/3)',
      ])
      // Per day, the rollup equals the raw table.
      const diff = await query(`SELECT count() AS n FROM (
        SELECT toDate(timestamp) AS d, count() AS c FROM actline.activities GROUP BY d) AS r
        FULL JOIN (SELECT toDate(bucket) AS d, sum(events) AS c FROM actline.activities_by_day GROUP BY d) AS u USING d
        WHERE r.c != u.c`)
      expect(Number(diff[0]!.n)).toBe(0)
    } finally {
      await exporter.shutdown()
    }
  })
})
