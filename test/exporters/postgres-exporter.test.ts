import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseActivity, type Activity } from '../../schemas/activity.ts'
import { PostgresExporterConfig } from '../../exporters/postgres/config.ts'
import { createPostgresExporter } from '../../exporters/postgres/exporter.ts'
import { createLogger } from '../../collector/server/logger.ts'
import { createScratchDatabase, PG_URL, tempDir } from '../helpers/stores.ts'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts'

const logger = createLogger('silent')

function at(timestamp: number): Activity {
  const r = parseActivity({ action: 'audit.item', source: 'user', timestamp })
  if (!r.ok) throw new Error('bad fixture')
  return r.activity
}

const targets = ['embedded', ...(PG_URL ? ['server'] : [])] as const

describe.each(targets)('postgres exporter (%s)', (target) => {
  const dir = tempDir()
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined
  let config: PostgresExporterConfig & { path: string }
  let exporter: ReturnType<typeof createPostgresExporter>

  beforeAll(async () => {
    scratch = target === 'server' ? await createScratchDatabase() : undefined
    config = { ...PostgresExporterConfig.parse({ partitions_ahead_months: 2 }), path: dir.path, ...(scratch && { url: scratch.url }) }
    exporter = createPostgresExporter(config, logger)
    await exporter.start()
  })
  afterAll(async () => {
    await exporter?.shutdown()
    await scratch?.drop()
    dir.remove()
  })

  const partitions = async () =>
    (await exporter.pool().query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1`,
    )).rows.map((r) => r.name)

  it('creates monthly partitions from last month to partitions_ahead_months ahead at start', async () => {
    const now = new Date()
    const name = (offset: number) => {
      const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1))
      return `audit_log_y${d.getUTCFullYear()}m${String(d.getUTCMonth() + 1).padStart(2, '0')}`
    }
    expect(await partitions()).toEqual(expect.arrayContaining([name(-1), name(0), name(1), name(2)]))
  })

  it('creates the partition for an old month on demand and stores the row there', async () => {
    const old = at(Date.UTC(2021, 5, 15))
    expect(await exporter.export([old])).toEqual({ status: 'success' })
    expect(await partitions()).toContain('audit_log_y2021m06')
    const { rows } = await exporter.pool().query(`SELECT id FROM audit_log_y2021m06 WHERE id = $1`, [old.id])
    expect(rows).toHaveLength(1)
  })

  it('stores a batch exported twice (a retry) only once', async () => {
    const batch = Array.from({ length: 300 }, () => at(Date.now()))
    expect((await exporter.export(batch)).status).toBe('success')
    expect((await exporter.export(batch)).status).toBe('success')
    const { rows } = await exporter.pool().query(`SELECT count(*)::int AS n FROM audit_log WHERE id = ANY($1::uuid[])`, [batch.map((a) => a.id)])
    expect(rows[0].n).toBe(300)
  })

  it('stores odd text and JSON exactly as sent (tabs, line breaks, backslashes, quotes, non-BMP, string details, absent fields)', async () => {
    const odd = 'tab\there\nnew line\r\\N back\\slash "quoted" \'single\' é 🧾 \u2028'
    const inputs = [
      { action: 'odd.one', source: 'user', actor_id: odd, entity_id: '\\', details: { note: odd, nested: { list: [1, 'two', null] } }, attributes: { [odd]: odd, empty: '' }, ip: '10.0.0.1', duration_ms: 0 },
      { action: 'odd.two', source: 'user', details: odd, ip: '2001:db8::1' },
      { action: 'odd.three', source: 'user' },
    ]
    const batch = inputs.map((input) => {
      const r = parseActivity(input)
      if (!r.ok) throw new Error('bad fixture')
      return r.activity
    })
    expect(await exporter.export(batch)).toEqual({ status: 'success' })
    const { rows } = await exporter.pool().query(
      `SELECT action, actor_id, entity_id, details, attributes, host(ip) AS ip, duration_ms, tenant_id FROM audit_log WHERE id = ANY($1::uuid[]) ORDER BY action`,
      [batch.map((a) => a.id)],
    )
    expect(rows).toEqual([
      { action: 'odd.one', actor_id: odd, entity_id: '\\', details: { note: odd, nested: { list: [1, 'two', null] } }, attributes: { [odd]: odd, empty: '' }, ip: '10.0.0.1', duration_ms: 0, tenant_id: null },
      { action: 'odd.three', actor_id: null, entity_id: null, details: null, attributes: {}, ip: null, duration_ms: null, tenant_id: null },
      { action: 'odd.two', actor_id: null, entity_id: null, details: odd, attributes: {}, ip: '2001:db8::1', duration_ms: null, tenant_id: null },
    ])
  })

  it('refuses a batch with a value the table refuses as a data error, and stores none of it (the pipeline then isolates the row)', async () => {
    const good = at(Date.now())
    const bad = { ...at(Date.now()), actor_id: 'nul \u0000 inside' }
    const result = await exporter.export([good, bad])
    expect(result.status).toBe('permanent')
    const { rows } = await exporter.pool().query(`SELECT count(*)::int AS n FROM audit_log WHERE id = ANY($1::uuid[])`, [[good.id, bad.id]])
    expect(rows[0].n).toBe(0)
    expect(await exporter.export([good])).toEqual({ status: 'success' })
  })

  it('refuses UPDATE, DELETE and TRUNCATE of audit_log, in every partition, and keeps the rows', async () => {
    const row = at(Date.now())
    const old = at(Date.UTC(2021, 2, 3))
    expect(await exporter.export([row, old])).toEqual({ status: 'success' })
    const pool = exporter.pool()
    for (const sql of [
      `UPDATE audit_log SET actor_id = 'someone-else' WHERE id = '${row.id}'`,
      `DELETE FROM audit_log WHERE id = '${row.id}'`,
      `DELETE FROM audit_log_y2021m03 WHERE id = '${old.id}'`,
      `UPDATE audit_log_y2021m03 SET action = 'edited' WHERE id = '${old.id}'`,
      'TRUNCATE audit_log',
    ]) {
      const err = await pool.query(sql).then(() => undefined, (e: Error & { code?: string; hint?: string }) => e)
      expect(err?.message, sql).toMatch(/^audit_log is append-only: (UPDATE|DELETE|TRUNCATE) is refused$/)
      expect(err?.code).toBe('42501')
      expect(err?.hint).toMatch(/retention, which drops whole monthly partitions/)
    }
    const { rows } = await pool.query(`SELECT id, action, actor_id FROM audit_log WHERE id = ANY($1::uuid[]) ORDER BY occurred_at`, [[row.id, old.id]])
    expect(rows).toEqual([
      { id: old.id, action: 'audit.item', actor_id: null },
      { id: row.id, action: 'audit.item', actor_id: null },
    ])
    // A re-sent row is still stored once: ON CONFLICT DO NOTHING updates nothing.
    expect(await exporter.export([row])).toEqual({ status: 'success' })
  })

  it('records each migration once however often it starts', async () => {
    if (target === 'embedded') {
      // PGlite allows one process on its directory: restart rather than open twice.
      await exporter.shutdown()
      exporter = createPostgresExporter(config, logger)
      await exporter.start()
    } else {
      const again = createPostgresExporter(config, logger)
      await again.start()
      await again.shutdown()
    }
    const { rows } = await exporter.pool().query(`SELECT version, count(*)::int AS n FROM actline_migrations GROUP BY version ORDER BY version`)
    expect(rows).toEqual([{ version: 1, n: 1 }, { version: 2, n: 1 }, { version: 3, n: 1 }, { version: 4, n: 1 }])
  })
})

describe.skipIf(!PG_URL)('postgres exporter (server behind a real TCP proxy)', () => {
  /** An exporter on a scratch database behind a real proxy, uncaught exceptions collected, everything closed after. */
  async function behindProxy(cutWhen: ((chunk: Buffer) => boolean) | undefined, fn: (t: { exporter: ReturnType<typeof createPostgresExporter>; proxy: TcpProxy; uncaught: Error[] }) => Promise<void>) {
    const scratch = await createScratchDatabase()
    const url = new URL(scratch.url)
    const proxy = await startTcpProxy(url.hostname, Number(url.port || 5432), 0, cutWhen)
    url.port = String(proxy.port)
    const dir = tempDir()
    const exporter = createPostgresExporter({ ...PostgresExporterConfig.parse({ url: url.toString() }), path: dir.path }, logger)
    const uncaught: Error[] = []
    const onUncaught = (err: Error) => uncaught.push(err)
    process.on('uncaughtException', onUncaught)
    try {
      await fn({ exporter, proxy, uncaught })
    } finally {
      process.off('uncaughtException', onUncaught)
      await exporter.shutdown()
      await proxy.close()
      await scratch.drop()
      dir.remove()
    }
  }

  it('reports a connection cut while a new connection sets its search_path as a failed start, never as an uncaught error', async () => {
    // Cut the moment the client sends the session's SET search_path: the one moment a
    // connection is neither the pool's (no listener of its) nor a query's.
    await behindProxy((chunk) => chunk.includes('SET search_path'), async ({ exporter, uncaught }) => {
      for (let i = 0; i < 3; i++) await expect(exporter.start()).rejects.toThrow(/Connection terminated/)
      await new Promise((r) => setTimeout(r, 200))
      expect(uncaught).toEqual([])
    })
  })

  it('reports a connection cut in the middle of a COPY batch as an outage, never as an uncaught error, and stores the batch once back', async () => {
    await behindProxy(undefined, async ({ exporter, proxy, uncaught }) => {
      await exporter.start()
      const batch = Array.from({ length: 20_000 }, () => at(Date.now()))
      // Cut at different points of the batch's statements: before BEGIN, in the COPY, at the INSERT.
      for (const delay of [0, 2, 10, 30, 80]) {
        const result = exporter.export(batch)
        await new Promise((r) => setTimeout(r, delay))
        await proxy.cut()
        const r = await result
        expect(['retryable', 'success'], (r as { error?: Error }).error?.message).toContain(r.status)
        await proxy.restore()
      }
      await new Promise((r) => setTimeout(r, 100))
      expect(uncaught).toEqual([])
      expect(await exporter.export(batch)).toEqual({ status: 'success' })
      const { rows } = await exporter.pool().query('SELECT count(*)::int AS n FROM audit_log')
      expect(rows[0].n).toBe(20_000)
    })
  })
})
