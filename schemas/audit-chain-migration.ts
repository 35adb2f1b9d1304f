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
import { chainOf, GENESIS, linkHash } from './audit-chain.ts'
import { CHAIN_VALUES_SELECT, chainValuesOfRow, HEADS_TABLE, micros } from './audit-chain-store.ts'
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
      // A chained row leaves the WHERE, so the same query gives the next page.
      const { rows } = await db.query<Record<string, unknown>>(
        `SELECT ${micros('occurred_at')} AS occurred_us, ${CHAIN_VALUES_SELECT} FROM audit_log WHERE row_hash IS NULL ORDER BY occurred_at, id LIMIT ${PAGE}`,
      )
      if (rows.length === 0) break
      const links = rows.map((r) => {
        const values = chainValuesOfRow(r)
        const chain = chainOf(values.tenant_id as string | null)
        const head = heads.get(chain) ?? { seq: 0n, hash: GENESIS }
        const seq = head.seq + 1n
        const hash = linkHash(head.hash, chain, seq, values)
        const l = { id: r.id, us: r.occurred_us, chain, seq: seq.toString(), prev: head.hash.toString('hex'), hash: hash.toString('hex') }
        heads.set(chain, { seq, hash })
        return l
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
