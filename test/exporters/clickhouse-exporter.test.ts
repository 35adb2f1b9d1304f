import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ClickHouseClient } from '@clickhouse/client'
import { parseActivity, type Activity } from '../../schemas/activity.ts'
import { ClickHouseExporterConfig } from '../../exporters/clickhouse/config.ts'
import { createClickHouseExporter } from '../../exporters/clickhouse/exporter.ts'
import { createLogger } from '../../collector/server/logger.ts'
import { tempDir } from '../helpers/stores.ts'

const logger = createLogger('silent')
const dir = tempDir()

function batch(n: number): Activity[] {
  return Array.from({ length: n }, (_, i) => {
    const r = parseActivity({ action: 'batch.item', source: 'system', entity_id: String(i) })
    if (!r.ok) throw new Error('bad fixture')
    return r.activity
  })
}

async function count(client: ClickHouseClient, ids: string[]): Promise<number> {
  const rs = await client.query({ query: 'SELECT count() AS n FROM actline.activities WHERE id IN {ids:Array(UUID)}', query_params: { ids }, format: 'JSONEachRow' })
  return Number((await rs.json<{ n: string }>())[0]!.n)
}

describe('clickhouse exporter (embedded engine)', () => {
  const config = { ...ClickHouseExporterConfig.parse({}), path: dir.path }
  const exporter = createClickHouseExporter(config, logger)

  beforeAll(() => exporter.start())
  afterAll(async () => {
    await exporter.shutdown()
    dir.remove()
  })

  it('stores a batch exported twice (a retry) only once', async () => {
    const rows = batch(500)
    expect(await exporter.export(rows)).toEqual({ status: 'success' })
    expect(await exporter.export(rows)).toEqual({ status: 'success' })
    expect(await count(exporter.client(), rows.map((r) => r.id))).toBe(500)
  })

  it("keeps an insert's thread and priority settings to the insert: reads after it run with the engine's own", async () => {
    const reader = exporter.reader()
    const settings = () => reader.rows<{ threads: number; nice: number }>("SELECT getSetting('max_threads') AS threads, getSetting('os_thread_priority') AS nice")
    const [before] = await settings()
    expect(await exporter.export(batch(10))).toEqual({ status: 'success' })
    expect(await settings()).toEqual([before])
    expect(before!.nice).toBe(0)
  })

  it('records each migration once however often it starts', async () => {
    const again = createClickHouseExporter(config, logger)
    await again.start()
    await again.shutdown()
    const rs = await exporter.client().query({ query: 'SELECT version, count() AS n FROM actline.actline_migrations GROUP BY version ORDER BY version', format: 'JSONEachRow' })
    expect((await rs.json<{ version: number; n: unknown }>()).map((r) => [r.version, Number(r.n)])).toEqual([[1, 1], [2, 1]])
  })

  it('applies a changed ttl_days to the existing table at start, and removes it at 0', async () => {
    const ttl = async () => {
      const rs = await exporter.client().query({ query: "SELECT create_table_query AS q FROM system.tables WHERE database = 'actline' AND name = 'activities'", format: 'JSONEachRow' })
      return (await rs.json<{ q: string }>())[0]!.q
    }
    const with90 = createClickHouseExporter({ ...config, ttl_days: 90 }, logger)
    await with90.start()
    await with90.shutdown()
    expect(await ttl()).toContain('TTL toDateTime(timestamp) + toIntervalDay(90)')
    const without = createClickHouseExporter({ ...config, ttl_days: 0 }, logger)
    await without.start()
    await without.shutdown()
    expect(await ttl()).not.toContain('TTL')
  })

  it('reports a missing table as retryable, so rows wait for it instead of being dropped', async () => {
    const client = exporter.client()
    await client.command({ query: 'DETACH TABLE actline.activities' })
    try {
      const result = await exporter.export(batch(1))
      expect(result.status).toBe('retryable')
    } finally {
      await client.command({ query: 'ATTACH TABLE actline.activities' })
    }
    expect((await exporter.export(batch(1))).status).toBe('success')
  })
})
