/**
 * The hash chain as audit_log stores it (issue 17), on PGlite and the
 * server: written by the exporter, read back and verified, and every kind of
 * tampering a superuser can do directly in the database found and named.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresExporterConfig } from '../../exporters/postgres/config.ts'
import { createPostgresExporter } from '../../exporters/postgres/exporter.ts'
import { createLogger } from '../../collector/server/logger.ts'
import { verifyAuditLog } from '../../schemas/audit-chain-store.ts'
import { WRITER_ROLE } from '../../schemas/postgres-schema.ts'
import { createScratchDatabase, tempDir } from '../helpers/stores.ts'
import { asSuperuser, AUDIT_TARGETS, invoices } from '../helpers/tamper.ts'

const logger = createLogger('silent')
const targets = AUDIT_TARGETS
const activity = invoices()

describe.each(targets)('audit_log hash chain (%s)', (target) => {
  const dir = tempDir()
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined
  let config: PostgresExporterConfig & { path: string }
  let exporter: ReturnType<typeof createPostgresExporter>
  const sql = (text: string, params: unknown[] = []) => exporter.pool().query(text, params)
  /** As a superuser would: with the append-only guard's trigger not firing. */
  const tamper = (text: string, params: unknown[] = []) => asSuperuser(exporter.pool(), text, params)
  const verify = (options: Parameters<typeof verifyAuditLog>[1] = {}) => verifyAuditLog(exporter.reader(), options)

  beforeAll(async () => {
    scratch = target === 'server' ? await createScratchDatabase() : undefined
    config = { ...PostgresExporterConfig.parse({}), path: dir.path, ...(scratch && { url: scratch.url }) }
    exporter = createPostgresExporter(config, logger)
    await exporter.start()
  })
  afterAll(async () => {
    await exporter?.shutdown()
    await scratch?.drop()
    dir.remove()
  })

  it('links each tenant its own chain, in batch order, from 1, and verify passes it', async () => {
    const batch = [activity({ tenant_id: 'acme' }), activity({ tenant_id: 'globex' }), activity({ tenant_id: 'acme' }), activity()]
    expect(await exporter.export(batch)).toEqual({ status: 'success' })
    const { rows } = await sql(`SELECT id::text, chain, chain_seq::int AS seq FROM audit_log ORDER BY chain, chain_seq`)
    expect(rows).toEqual([
      { id: batch[3]!.id, chain: '', seq: 1 },
      { id: batch[0]!.id, chain: 'acme', seq: 1 },
      { id: batch[2]!.id, chain: 'acme', seq: 2 },
      { id: batch[1]!.id, chain: 'globex', seq: 1 },
    ])
    const report = await verify()
    expect(report).toMatchObject({ ok: true, rows: 4, unchained: 0 })
    expect(report.chains.map((c) => [c.chain, c.rows, c.head?.seq])).toEqual([['', 1, '1'], ['acme', 2, '2'], ['globex', 1, '1']])
  })

  it('stores the values a hostile client sends and still verifies them: the collector and the database write the same canonical text', async () => {
    const odd = [
      activity({ tenant_id: 'acme', actor_id: 'zoë 👩‍💻 \u202e', ip: '2001:DB8:0:0:0:0:0:1', details: { z: 1, a: [1.5, -0, 1e21, 5e-324, -1.5e-7, 0.1 + 0.2, 12345678901234567890, null, { '\u00e9': 'x', ab: 'same byte length as é', e: true, '😀': 4, '': '' }] } }),
      activity({ tenant_id: 'acme', ip: '::ffff:192.0.2.1', attributes: { b: '2', a: '1', 'ключ': 'значение', aa: '\u0001\u001f\u007f' }, duration_ms: 0.1 + 0.2, details: 'just text "quoted" \\ back' }),
      activity({ tenant_id: 'acme', ip: '192.0.2.7', user_agent: 'tab\there\nnewline\\backslash', duration_ms: -0, details: { deep: { deeper: { deepest: [[[1]]] } } } }),
      activity({ tenant_id: 'acme', ip: '::', duration_ms: 1e-300, details: { list: [] } }),
      activity({ tenant_id: 'acme', ip: 'fe80::1:2:3:4', duration_ms: 604799999.9999999, details: {} }),
      activity({ tenant_id: 'acme', ip: '2001:db8::192.0.2.33', details: { n: -0.000001, m: 1e-7, k: 123e-20 } }),
    ]
    expect(await exporter.export(odd)).toEqual({ status: 'success' })
    const r = await verify({ tenant: 'acme' })
    expect(r.chains[0]!.broken).toBeUndefined()
    expect(r).toMatchObject({ ok: true, rows: 8 })
  })

  it('leaves the chain as it was when a batch comes again, whole or with new rows among the stored ones', async () => {
    const first = Array.from({ length: 50 }, () => activity({ tenant_id: 'resend' }))
    expect(await exporter.export(first)).toEqual({ status: 'success' })
    expect(await exporter.export(first)).toEqual({ status: 'success' })
    const mixed = [...first.slice(10, 20), activity({ tenant_id: 'resend' }), ...first.slice(0, 5), activity({ tenant_id: 'resend' }), first[0]!]
    expect(await exporter.export(mixed)).toEqual({ status: 'success' })
    const { rows } = await sql(`SELECT count(*)::int AS n, max(chain_seq)::int AS top FROM audit_log WHERE chain = 'resend'`)
    expect(rows[0]).toEqual({ n: 52, top: 52 })
    const { rows: heads } = await sql(`SELECT seq::int AS seq FROM audit_chain_heads WHERE chain = 'resend'`)
    expect(heads).toEqual([{ seq: 52 }])
    const rep = await verify({ tenant: 'resend' })
    expect(rep.ok, JSON.stringify(rep)).toBe(true)
  })

  describe('finds what a superuser did in the database, and names it', () => {
    /** A fresh chain of n rows for one test. */
    const chainOf = async (tenant: string, n = 10) => {
      const rows = Array.from({ length: n }, () => activity({ tenant_id: tenant, actor_id: 'alice' }))
      expect(await exporter.export(rows)).toEqual({ status: 'success' })
      expect((await verify({ tenant })).ok).toBe(true)
      return rows
    }

    it('an edited row', async () => {
      const rows = await chainOf('t-edit')
      await tamper(`UPDATE audit_log SET actor_id = 'someone-else' WHERE id = $1`, [rows[3]!.id])
      const r = await verify({ tenant: 't-edit' })
      expect(r.ok).toBe(false)
      expect(r.chains[0]!.broken).toMatchObject({ kind: 'edited', seq: '4', id: rows[3]!.id })
    })

    it('a deleted row', async () => {
      const rows = await chainOf('t-delete')
      await tamper(`DELETE FROM audit_log WHERE id = $1`, [rows[6]!.id])
      expect((await verify({ tenant: 't-delete' })).chains[0]!.broken).toMatchObject({ kind: 'deleted', seq: '7' })
    })

    it('an inserted row, copied from a real one with its links', async () => {
      const rows = await chainOf('t-insert')
      await tamper(`INSERT INTO audit_log SELECT * FROM audit_log WHERE id = $1`.replace('SELECT *', `SELECT gen_random_uuid(), occurred_at, received_at, source, action, category, severity, status, entity_type, entity_id, 'mallory', tenant_id, service, trace_id, span_id, correlation_id, duration_ms, details, ip, user_agent, attributes, chain, chain_seq, prev_hash, row_hash`), [rows[2]!.id])
      expect((await verify({ tenant: 't-insert' })).chains[0]!.broken).toMatchObject({ kind: expect.stringMatching(/inserted|edited/), seq: '3' })
    })

    it('a row inserted without a chain', async () => {
      await chainOf('t-unchained', 3)
      await sql(`INSERT INTO audit_log (id, occurred_at, received_at, source, action, category, severity, status, tenant_id) VALUES (gen_random_uuid(), now(), now(), 'user', 'x', 'other', 'info', 'success', 't-unchained')`)
      expect(await verify({ tenant: 't-unchained' })).toMatchObject({ ok: false, unchained: 1 })
    })

    it('two rows exchanged', async () => {
      const rows = await chainOf('t-reorder')
      await tamper(`UPDATE audit_log SET chain_seq = CASE chain_seq WHEN 5 THEN 6 ELSE 5 END WHERE chain = 't-reorder' AND chain_seq IN (5, 6)`)
      expect((await verify({ tenant: 't-reorder' })).chains[0]!.broken).toMatchObject({ kind: 'reordered', seq: '5', id: rows[5]!.id })
    })

    it('a removed tail: by the writer\'s head, and by an anchor when the head was moved back too', async () => {
      await chainOf('t-tail')
      const [anchor] = (await verify({ tenant: 't-tail' })).chains.map((c) => ({ chain: c.chain, seq: BigInt(c.head!.seq), hash: Buffer.from(c.head!.hash, 'hex') }))
      await tamper(`DELETE FROM audit_log WHERE chain = 't-tail' AND chain_seq > 7`)
      expect((await verify({ tenant: 't-tail' })).chains[0]!.broken).toMatchObject({ kind: 'truncated', seq: '8' })
      const { rows } = await sql(`SELECT row_hash FROM audit_log WHERE chain = 't-tail' AND chain_seq = 7`)
      await sql(`UPDATE audit_chain_heads SET seq = 7, hash = $1 WHERE chain = 't-tail'`, [rows[0].row_hash])
      expect((await verify({ tenant: 't-tail' })).ok).toBe(true)
      expect((await verify({ tenant: 't-tail', anchor: [anchor!] })).chains[0]!.broken).toMatchObject({ kind: 'truncated', seq: '8' })
    })
  })

  it('refuses UPDATE and DELETE of a chained row', async () => {
    for (const text of [`UPDATE audit_log SET actor_id = 'x' WHERE chain = 'acme'`, `DELETE FROM audit_log WHERE chain = 'acme'`, `UPDATE audit_log SET row_hash = NULL WHERE chain = 'acme'`]) {
      await expect(sql(text), text).rejects.toMatchObject({ code: '42501' })
    }
    // The opening for migration 3 is for rows without a hash only, and changes nothing else.
    await expect(sql(`BEGIN; SET LOCAL actline.chaining = 'on'; UPDATE audit_log SET chain_seq = 99 WHERE chain = 'acme'; COMMIT`)).rejects.toMatchObject({ code: '42501' })
    await sql('ROLLBACK').catch(() => {})
  })

  it('makes a writer role that may insert and read the trail, and neither UPDATE nor DELETE it', async () => {
    const client = await exporter.pool().connect()
    try {
      await client.query(`SET ROLE ${WRITER_ROLE}`)
      for (const text of [`UPDATE audit_log SET actor_id = 'x' WHERE chain = 'acme'`, `DELETE FROM audit_log WHERE chain = 'acme'`, 'TRUNCATE audit_log', 'DROP TABLE audit_log']) {
        const err = await client.query(text).then(() => undefined, (e: Error & { code?: string }) => e)
        expect(err?.message, text).toMatch(/permission denied|must be owner/)
        expect(err?.code, text).toBe('42501')
      }
      // What writing needs.
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM audit_log WHERE chain = 'acme'`)
      expect(rows[0].n).toBeGreaterThan(0)
      await client.query(`SELECT seq FROM audit_chain_heads WHERE chain = 'acme' FOR UPDATE`)
    } finally {
      await client.query('RESET ROLE')
      client.release()
    }
  })

  it.runIf(target === 'server')("writes the chain as a login that holds only the writer role", async () => {
    const login = `actline_writer_${process.pid}`
    await sql(`CREATE ROLE ${login} LOGIN IN ROLE ${WRITER_ROLE}`)
    const url = new URL(scratch!.url)
    url.username = login
    const writer = createPostgresExporter({ ...config, url: url.toString() }, logger)
    try {
      await writer.start()
      const rows = Array.from({ length: 20 }, () => activity({ tenant_id: 'least-privilege' }))
      expect(await writer.export(rows)).toEqual({ status: 'success' })
      expect(await writer.export(rows)).toEqual({ status: 'success' })
      expect(await verify({ tenant: 'least-privilege' })).toMatchObject({ ok: true, rows: 20 })
    } finally {
      await writer.shutdown()
      await sql(`DROP OWNED BY ${login}`)
      await sql(`DROP ROLE ${login}`)
    }
  })

  it('chains the rows an audit_log held before migration 3, oldest first', async () => {
    // Back to before the migration: no chain on any row, no heads, version 3 unrecorded.
    await tamper(`UPDATE audit_log SET chain = NULL, chain_seq = NULL, prev_hash = NULL, row_hash = NULL`)
    await sql(`DELETE FROM audit_chain_heads`)
    await sql(`DELETE FROM actline_migrations WHERE version = 3`)
    const before = (await sql(`SELECT count(*)::int AS n FROM audit_log`)).rows[0].n as number
    await exporter.shutdown()
    exporter = createPostgresExporter(config, logger)
    await exporter.start()
    const report = await verify()
    expect(report.unchained).toBe(0)
    expect(report.rows).toBe(before)
    expect(report.ok).toBe(true)
    const { rows } = await sql(`SELECT bool_and(prev_seq_time <= occurred_at) AS ordered FROM (SELECT occurred_at, lag(occurred_at) OVER (PARTITION BY chain ORDER BY chain_seq) AS prev_seq_time FROM audit_log) t`)
    expect(rows[0].ordered).toBe(true)
  })
})
