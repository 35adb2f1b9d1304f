/**
 * Test harness: a real collector on an ephemeral port with real stores, and
 * direct read access to those stores to check what actually landed.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import type { ClickHouseClient } from '@clickhouse/client'
import { parseConfig, type Config } from '../../collector/config.ts'
import { createCollector, type Collector } from '../../collector/collector.ts'
import { createLogger } from '../../collector/server/logger.ts'
import { createClickHouseExporter } from '../../exporters/clickhouse/exporter.ts'
import { createPostgresExporter } from '../../exporters/postgres/exporter.ts'

export const PG_URL = process.env.PG_URL

export type PgMode = 'embedded' | 'server'

/** A fresh database on the real server at PG_URL, so test files never share tables. */
export async function createScratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (!PG_URL) throw new Error('PG_URL is not set')
  const name = `actline_t_${process.pid}_${Date.now().toString(36)}`
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = new URL(PG_URL)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_URL })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await c.end()
    },
  }
}

export function tempDir(prefix = 'actline-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

export function testConfig(dataDir: string, overrides: Record<string, any> = {}): Config {
  return parseConfig({
    data_dir: dataDir,
    ...overrides,
    server: { port: 0, log_level: process.env.ACTLINE_TEST_LOG ?? 'silent', shutdown_timeout_ms: 10_000, ...overrides.server, clickhouse_http: { port: 0, ...overrides.server?.clickhouse_http } },
    pipeline: {
      ...overrides.pipeline,
      batch: { timeout_ms: 100, ...overrides.pipeline?.batch },
      // In tests the collector shares its process with vitest and the stores
      // being checked, so the process-wide limit would measure them too; the
      // overload test sets its own on a collector process of its own.
      memory_limiter: { limit_mib: 0, ...overrides.pipeline?.memory_limiter },
    },
  })
}

export interface RunningCollector {
  collector: Collector
  url: string
  config: Config
  /** The embedded store's ClickHouse HTTP interface, when it serves one. */
  clickhouseHttp?: string
}

export async function startCollector(config: Config): Promise<RunningCollector> {
  const collector = await createCollector(config, { logger: createLogger(config.server.log_level) })
  const { url, clickhouseHttp } = await collector.start()
  return { collector, url, config, ...(clickhouseHttp && { clickhouseHttp }) }
}

/** Direct clients on a collector's stores, opened after the collector has shut down or beside it. */
export async function openStores(config: Config) {
  const logger = createLogger('silent')
  const ch = createClickHouseExporter(config.exporters.clickhouse, logger)
  const pgx = createPostgresExporter(config.exporters.postgres, logger)
  await Promise.all([ch.start(), pgx.start()])
  return {
    clickhouse: ch.client() as ClickHouseClient,
    postgres: pgx.pool(),
    async close() {
      await Promise.all([ch.shutdown(), pgx.shutdown()])
    },
  }
}

/** The running collector's own store clients: PGlite takes one connection, so tests share the exporter's. */
export function storesOf(collector: Collector) {
  const find = <T>(name: string) => collector.exporters.find((e) => e.name === name) as T
  return {
    clickhouse: find<ReturnType<typeof createClickHouseExporter>>('clickhouse').client(),
    postgres: find<ReturnType<typeof createPostgresExporter>>('postgres').pool(),
  }
}

export async function chRows<T = Record<string, unknown>>(client: ClickHouseClient, ids: string[]): Promise<T[]> {
  const rs = await client.query({
    query: 'SELECT * FROM actline.activities WHERE id IN {ids:Array(UUID)} ORDER BY timestamp, id',
    query_params: { ids },
    format: 'JSONEachRow',
  })
  return rs.json<T>()
}

/**
 * How many of `ids` are not in actline.activities. For sets of 100k+ ids,
 * too many for a query parameter: they go through a Memory table.
 */
export async function missingFromClickHouse(client: ClickHouseClient, ids: readonly string[]): Promise<number> {
  await client.command({ query: 'CREATE TABLE IF NOT EXISTS default.acked (id UUID) ENGINE = Memory' })
  await client.command({ query: 'TRUNCATE TABLE default.acked' })
  await client.insert({ table: 'default.acked', values: ids.map((id) => ({ id })), format: 'JSONEachRow' })
  const rs = await client.query({ query: 'SELECT count() AS n FROM default.acked WHERE id NOT IN (SELECT id FROM actline.activities)', format: 'JSONEachRow' })
  return Number((await rs.json<{ n: string }>())[0]!.n)
}

export async function pgRows<T extends pg.QueryResultRow = any>(pool: pg.Pool, ids: string[]): Promise<T[]> {
  const { rows } = await pool.query<T>('SELECT * FROM audit_log WHERE id = ANY($1::uuid[]) ORDER BY occurred_at, id', [ids])
  return rows
}

/**
 * Poll until `check` returns true; fails with `what` after `timeoutMs`. A
 * check that throws counts as not yet (a pooled connection a cut proxy
 * killed fails once before the pool replaces it); the last error is told
 * at the timeout.
 */
/**
 * Until every exporter has passed every record in the log: its inserts have
 * returned, rollup views included. A count of the raw table can match while
 * ClickHouse is still writing the views' parts of the same insert.
 */
export async function caughtUp(collector: Collector, timeoutMs = 60_000): Promise<void> {
  await eventually('every exporter caught up with the log', async () => Object.values(collector.pending()).every((n) => n === 0), timeoutMs)
}

export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      if (await check()) return
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export async function post(
  url: string,
  body: string | Buffer,
  headers: Record<string, string> = { 'content-type': 'application/json' },
  path = '/v1/activities',
) {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers, body: body as BodyInit })
  const raw = Buffer.from(await res.arrayBuffer())
  const text = raw.toString()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, json, text, raw }
}
