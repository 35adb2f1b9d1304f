/**
 * Writing audit_log's hash chain (docs/audit-integrity.md). A batch is
 * linked and inserted in one transaction that holds its chains' heads
 * (`audit_chain_heads`, `SELECT ... FOR UPDATE`, locked in chain order so
 * two writers never deadlock on each other): a second collector, a retry
 * after a crash and `actline audit retain` all append after the head they
 * find, and a transaction that fails takes its sequence numbers with it.
 *
 * A row already stored (a re-sent batch: ON CONFLICT DO NOTHING) must not
 * consume a sequence number. Looking every row up first would cost an index
 * probe per row on every batch; instead the batch is inserted optimistically
 * behind a savepoint, and only when the insert stored fewer rows than it
 * was given is it rolled back, the stored rows left out and the rest linked
 * again. The heads are locked, so nothing else can change in between.
 */
import type pg from 'pg'
import type { Activity } from '../../schemas/activity.ts'
import { activityLinkHash, chainOf, GENESIS } from '../../schemas/audit-chain.ts'
import { HEADS_TABLE } from '../../schemas/audit-chain-store.ts'
import { isoTime } from '../time-format.ts'

/** A row's place in its chain. */
export interface ChainLink {
  chain: string
  seq: bigint
  prev: Buffer
  hash: Buffer
}

/**
 * Inserts rows with their links; resolves to how many it stored (the rest
 * were there already). `link(i)` is row i's link, computed on first asking,
 * in order: an insert that asks while it writes (a chunk at a time) hashes
 * the next rows while the database takes the ones before.
 */
export type LinkedInsert = (rows: readonly Activity[], link: (i: number) => ChainLink) => Promise<number>

type Heads = Map<string, { seq: bigint; hash: Buffer }>

/**
 * Append `batch` to its chains through `insert`, inside the transaction the
 * caller opened on `client`. Rows repeated within the batch are linked once.
 */
export async function appendChained(client: pg.ClientBase, batch: readonly Activity[], insert: LinkedInsert): Promise<void> {
  let rows = unique(batch)
  const heads = await lockHeads(client, [...new Set(rows.map((a) => chainOf(a.tenant_id)))])
  await client.query('SAVEPOINT actline_chain')
  let links = linker(rows, heads)
  let stored = await insert(rows, links.at)
  if (stored !== rows.length) {
    await client.query('ROLLBACK TO SAVEPOINT actline_chain')
    const present = await storedKeys(client, rows)
    rows = rows.filter((a) => !present.has(keyOf(a)))
    links = linker(rows, heads)
    stored = await insert(rows, links.at)
    // Every chain this batch touches is locked, and a row's chain is fixed by its tenant: nothing could have stored these meanwhile.
    if (stored !== rows.length) throw new Error(`audit chain: ${rows.length - stored} rows of the batch were stored by another writer while its chains were locked`)
  }
  await saveHeads(client, links.all())
}

/** Sequence numbers and hashes in batch order, after each chain's head, computed as they are asked for. */
function linker(rows: readonly Activity[], heads: Heads): { at(i: number): ChainLink; all(): ChainLink[] } {
  const tip = new Map([...heads].map(([chain, h]) => [chain, { ...h }]))
  const links: ChainLink[] = []
  const at = (i: number): ChainLink => {
    while (links.length <= i) {
      const a = rows[links.length]!
      const chain = chainOf(a.tenant_id)
      const head = tip.get(chain)!
      const seq = head.seq + 1n
      const hash = activityLinkHash(head.hash, chain, seq, a)
      links.push({ chain, seq, prev: head.hash, hash })
      head.seq = seq
      head.hash = hash
    }
    return links[i]!
  }
  return { at, all: () => (rows.length > 0 && at(rows.length - 1), links) }
}

async function lockHeads(client: pg.ClientBase, chains: string[]): Promise<Heads> {
  const heads: Heads = new Map()
  if (chains.length === 0) return heads
  // A chain seen for the first time gets its head row; both statements go in "C" order, the same for every writer.
  await client.query(
    `INSERT INTO ${HEADS_TABLE} (chain, seq, hash) SELECT c, 0, $2::pg_catalog.bytea FROM pg_catalog.unnest($1::pg_catalog.text[]) AS c ORDER BY c COLLATE "C" ON CONFLICT (chain) DO NOTHING`,
    [chains, GENESIS],
  )
  const { rows } = await client.query<{ chain: string; seq: string; hash: Buffer }>(
    `SELECT chain, seq::text AS seq, hash FROM ${HEADS_TABLE} WHERE chain OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[]) ORDER BY chain COLLATE "C" FOR UPDATE`,
    [chains],
  )
  for (const r of rows) heads.set(r.chain, { seq: BigInt(r.seq), hash: r.hash })
  return heads
}

async function saveHeads(client: pg.ClientBase, links: readonly ChainLink[]): Promise<void> {
  const last = new Map<string, ChainLink>()
  for (const l of links) last.set(l.chain, l)
  if (last.size === 0) return
  const heads = [...last.values()]
  await client.query(
    `UPDATE ${HEADS_TABLE} AS h SET seq = u.seq, hash = pg_catalog.decode(u.hash, 'hex'), updated_at = pg_catalog.now()
FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::pg_catalog.int8[]), pg_catalog.unnest($3::pg_catalog.text[])) AS u(chain, seq, hash) WHERE h.chain OPERATOR(pg_catalog.=) u.chain`,
    [heads.map((l) => l.chain), heads.map((l) => l.seq.toString()), heads.map((l) => l.hash.toString('hex'))],
  )
}

/** audit_log's key: uuid compares case-blind, so the id is lowered. */
function keyOf(a: Activity): string {
  return `${a.id.toLowerCase()}|${Math.trunc(a.timestamp)}`
}

function unique(batch: readonly Activity[]): Activity[] {
  const seen = new Set<string>()
  const rows: Activity[] = []
  for (const a of batch) {
    const k = keyOf(a)
    if (seen.has(k)) continue
    seen.add(k)
    rows.push(a)
  }
  return rows.length === batch.length ? (batch as Activity[]) : rows
}

async function storedKeys(client: pg.ClientBase, rows: readonly Activity[]): Promise<Set<string>> {
  const { rows: found } = await client.query<{ id: string; ms: string }>(
    `SELECT a.id::pg_catalog.text AS id, pg_catalog.floor(extract(epoch from a.occurred_at) OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8::pg_catalog.text AS ms
FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.uuid[]), pg_catalog.unnest($2::pg_catalog.timestamptz[])) AS r(id, t) JOIN audit_log a ON a.id OPERATOR(pg_catalog.=) r.id AND a.occurred_at OPERATOR(pg_catalog.=) r.t`,
    [rows.map((a) => a.id), rows.map((a) => isoTime(a.timestamp))],
  )
  return new Set(found.map((r) => `${r.id}|${r.ms}`))
}
