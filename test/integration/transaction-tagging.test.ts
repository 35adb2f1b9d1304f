/**
 * The register hook's transaction tagging (instrumentation/transaction-tagging.ts)
 * on the real server (PG_URL): what reaches the WAL, read back through a
 * test_decoding slot, is the context message inside the same transaction as
 * the app's writes, before them; and the app's own statements behave as
 * without it (results, errors, commits, an idle connection after).
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { withActivityContext } from '../../instrumentation/index.ts'
import { patchQuery } from '../../instrumentation/transaction-tagging.ts'
import { createScratchDatabase, PG_URL } from '../helpers/stores.ts'

class TaggedClient extends pg.Client {}
patchQuery(TaggedClient.prototype as unknown as Parameters<typeof patchQuery>[0])

describe.skipIf(!PG_URL)('transaction tagging (server)', () => {
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>>
  let admin: pg.Client
  let app: TaggedClient
  const slot = `actline_tag_${process.pid}`

  /** The decoded WAL since the last call: BEGIN, message, table changes and COMMIT lines. */
  const wal = async () =>
    (await admin.query(`SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL, 'include-xids', '0')`, [slot])).rows
      .map((r: { data: string }) => r.data.replace(/ sz: \d+/, '').replace(/^(message: transactional: \d prefix: actline), content:.*"actor_id":"([^"]+)".*$/, '$1 actor $2'))

  beforeAll(async () => {
    scratch = await createScratchDatabase()
    admin = new pg.Client({ connectionString: scratch.url })
    await admin.connect()
    await admin.query(`CREATE TABLE t (id int PRIMARY KEY, ref int UNIQUE DEFERRABLE INITIALLY DEFERRED)`)
    await admin.query(`SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, [slot])
    app = new TaggedClient({ connectionString: scratch.url })
    await app.connect()
  }, 60_000)

  afterAll(async () => {
    await app?.end()
    await admin?.query(`SELECT pg_drop_replication_slot($1)`, [slot]).catch(() => {})
    await admin?.end()
    await scratch?.drop()
  })

  const as = <T>(fn: () => Promise<T>) => withActivityContext({ actorId: 'u-1' }, fn)

  it('puts the message first inside a transaction the app opens', async () => {
    await as(async () => {
      await app.query('BEGIN')
      await app.query('INSERT INTO t (id) VALUES (1)')
      await app.query('COMMIT')
    })
    expect(await wal()).toEqual(['BEGIN', 'message: transactional: 1 prefix: actline actor u-1', 'table public.t: INSERT: id[integer]:1 ref[integer]:null', 'COMMIT'])
  })

  it('wraps a write outside a transaction, and answers once it is committed, promise or callback', async () => {
    const result = await as(() => app.query('INSERT INTO t (id) VALUES ($1) RETURNING id', [2]))
    expect(result.rows).toEqual([{ id: 2 }])
    const viaCallback = await as(() => new Promise<pg.QueryResult>((resolve, reject) => app.query('UPDATE t SET ref = $1 WHERE id = $2', [20, 2], (err, res) => (err ? reject(err) : resolve(res)))))
    expect(viaCallback.rowCount).toBe(1)
    // Committed by the time the app heard: another connection sees it.
    expect((await admin.query('SELECT ref FROM t WHERE id = 2')).rows).toEqual([{ ref: 20 }])
    expect(await wal()).toEqual([
      'BEGIN', 'message: transactional: 1 prefix: actline actor u-1', 'table public.t: INSERT: id[integer]:2 ref[integer]:null', 'COMMIT',
      'BEGIN', 'message: transactional: 1 prefix: actline actor u-1', 'table public.t: UPDATE: id[integer]:2 ref[integer]:20', 'COMMIT',
    ])
  })

  it('sends any context text as it is: quotes, backslashes, odd Unicode', async () => {
    const actorId = `o'brien\\"; DROP TABLE t; -- \u2028 \u{1F600}`
    await withActivityContext({ actorId }, () => app.query('INSERT INTO t (id) VALUES (4)'))
    const raw = (await admin.query(`SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)`, [slot])).rows.map((r: { data: string }) => r.data)
    const message = raw.find((l: string) => l.startsWith('message:'))!
    expect(JSON.parse(message.slice(message.indexOf('content:') + 'content:'.length)).actor_id).toBe(actorId)
    expect((await admin.query('SELECT count(*)::int AS n FROM t')).rows).toEqual([{ n: 3 }])
    await admin.query('DELETE FROM t WHERE id = 4')
    await wal()
  })

  it('sends nothing more without a context, and nothing for reads', async () => {
    await app.query('INSERT INTO t (id) VALUES (3)')
    await as(() => app.query('SELECT * FROM t'))
    expect(await wal()).toEqual(['BEGIN', 'table public.t: INSERT: id[integer]:3 ref[integer]:null', 'COMMIT'])
  })

  it('gives the app its own error, at the write or at COMMIT, and leaves the connection out of any transaction', async () => {
    // pg rejects at the error, before the server says it is ready again: the status is read after a round trip.
    const status = async () => (await app.query('SELECT 1'), app.getTransactionStatus())
    await expect(as(() => app.query('INSERT INTO t (id) VALUES (1)'))).rejects.toThrow(/duplicate key/)
    expect(await status()).toBe('I')
    // A deferred constraint fails at COMMIT: that is the write's error, as it would be in autocommit.
    await expect(as(() => app.query('UPDATE t SET ref = 20 WHERE id = 3'))).rejects.toThrow(/duplicate key/)
    expect(await status()).toBe('I')
    expect((await app.query('SELECT count(*)::int AS n FROM t')).rows).toEqual([{ n: 3 }])
    expect(await wal()).toEqual([])
  })

  it('keeps the app working, untagged, on a server that refuses the message', async () => {
    class Refused extends pg.Client {}
    patchQuery(Refused.prototype as unknown as Parameters<typeof patchQuery>[0])
    const role = `actline_tag_${process.pid}`
    await admin.query(`CREATE ROLE ${role} LOGIN; GRANT ALL ON t TO ${role}; REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) FROM PUBLIC`)
    const url = new URL(scratch.url)
    url.username = role
    const refused = new Refused({ connectionString: url.toString() })
    await refused.connect()
    try {
      await as(async () => {
        await refused.query('BEGIN')
        await refused.query('INSERT INTO t (id) VALUES (10)')
        await refused.query('COMMIT')
        await refused.query('INSERT INTO t (id) VALUES (11)')
      })
      expect((await admin.query('SELECT id FROM t WHERE id >= 10 ORDER BY id')).rows).toEqual([{ id: 10 }, { id: 11 }])
      expect((await wal()).filter((l) => !/^(BEGIN|COMMIT)$/.test(l))).toEqual(['table public.t: INSERT: id[integer]:10 ref[integer]:null', 'table public.t: INSERT: id[integer]:11 ref[integer]:null'])
    } finally {
      await refused.end()
      await admin.query(`GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO PUBLIC; REVOKE ALL ON t FROM ${role}; DROP ROLE ${role}`)
    }
  })
})
