/**
 * PostgreSQL migration 3's step: chaining the rows an audit_log held before
 * it had a chain, oldest first (occurred_at, then id), with progress. It
 * runs inside the migration's transaction: a failure leaves no row chained
 * and the migration unrecorded, so the next start begins again.
 *
 * audit_log refuses UPDATE (migration 2); the guard lets exactly this one
 * through: a row without a hash getting one, with none of its own columns
 * changed, in a transaction that set `actline.chaining`. After the
 * migration no row lacks a hash, so the opening is closed for good.
 */
import { GENESIS, hashLink } from './audit-chain.ts'
import { canonicalSql, HEADS_TABLE, micros } from './audit-chain-store.ts'
import type { MigrationDb, Step } from './migrations.ts'

const PAGE = 5000

export const chainExistingRows: Step = {
  progress: 'chaining existing audit_log rows',
  async run(db: MigrationDb, progress) {
    await db.query(`SET LOCAL actline.chaining = 'on'`)
    const { rows: counted } = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_log WHERE row_hash IS NULL')
    const total = Number(counted[0]!.n)
    if (total === 0) return
    const heads = new Map<string, { seq: bigint; hash: Buffer }>()
    const { rows: existing } = await db.query<{ chain: string; seq: string; hash: Buffer }>(`SELECT chain, seq::text AS seq, hash FROM ${HEADS_TABLE} FOR UPDATE`)
    for (const h of existing) heads.set(h.chain, { seq: BigInt(h.seq), hash: h.hash })
    let done = 0
    let reported = Date.now()
    for (;;) {
      // A chained row leaves the WHERE, so the same query gives the next page. Sequence numbers continue
      // each chain's head; the canonical text comes from the database, as verify will compute it.
      const { rows } = await db.query<{ id: string; us: string; chain: string; seq: string; canonical: string }>(
        `SELECT p.id::text AS id, ${micros('p.occurred_at')} AS us, p.c AS chain, p.s::text AS seq, ${canonicalSql('p.c', 'p.s', 'p')} AS canonical
FROM (
  SELECT t.*, coalesce(t.tenant_id, '') AS c,
    coalesce(($1::jsonb ->> coalesce(t.tenant_id, ''))::bigint, 0) + row_number() OVER (PARTITION BY coalesce(t.tenant_id, '') ORDER BY t.occurred_at, t.id) AS s
  FROM (SELECT * FROM audit_log WHERE row_hash IS NULL ORDER BY occurred_at, id LIMIT ${PAGE}) t
) p ORDER BY p.c, p.s`,
        [JSON.stringify(Object.fromEntries([...heads].map(([c, h]) => [c, h.seq.toString()])))],
      )
      if (rows.length === 0) break
      const links = rows.map((r) => {
        const head = heads.get(r.chain) ?? { seq: 0n, hash: GENESIS }
        const seq = BigInt(r.seq)
        if (seq !== head.seq + 1n) throw new Error(`chaining existing rows: chain '${r.chain}' would go from ${head.seq} to ${seq}`)
        const hash = hashLink(head.hash, r.canonical)
        heads.set(r.chain, { seq, hash })
        return { id: r.id, us: r.us, chain: r.chain, seq: r.seq, prev: head.hash.toString('hex'), hash: hash.toString('hex') }
      })
      await db.query(
        `UPDATE audit_log AS a SET chain = u.chain, chain_seq = u.seq, prev_hash = decode(u.prev, 'hex'), row_hash = decode(u.hash, 'hex')
FROM json_to_recordset($1::json) AS u(id uuid, us bigint, chain text, seq bigint, prev text, hash text)
WHERE a.id = u.id AND a.occurred_at = 'epoch'::timestamptz + u.us * interval '1 microsecond'`,
        [JSON.stringify(links)],
      )
      done += rows.length
      if (Date.now() - reported > 2000 || done === total) {
        progress(`chained ${done} of ${total} existing rows`)
        reported = Date.now()
      }
    }
    const chains = [...heads.keys()]
    await db.query(
      `INSERT INTO ${HEADS_TABLE} (chain, seq, hash) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])
ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, updated_at = now()`,
      [chains, chains.map((c) => heads.get(c)!.seq.toString()), chains.map((c) => heads.get(c)!.hash)],
    )
  },
}
