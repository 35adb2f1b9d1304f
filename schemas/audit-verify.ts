/**
 * Verifying one hash chain (docs/audit-integrity.md) from its rows in
 * sequence order, streamed: where the database's scan found a break
 * (audit-chain-store.ts), this reads the rows around it and names it. It
 * stops at the first broken link:
 *
 * - `edited`: the row's content no longer gives its stored hash;
 * - `deleted`: a sequence number is missing (the next row's prev_hash is
 *   the missing row's hash);
 * - `inserted`: a row that is not part of the chain: a sequence number
 *   used twice, or a row whose prev_hash is not the row before's;
 * - `reordered`: a row's prev_hash is the hash of a row that comes after
 *   it: rows exchanged their places;
 * - `truncated`: the chain ends before an anchor's head (rows after it
 *   removed), `replaced`: the anchor's row is not the one there now.
 */
import { GENESIS, hashLink } from './audit-chain.ts'

/** A stored row as verify reads it: its link, and its canonical text as the database computes it from what it holds now. */
export interface StoredChainRow {
  chain: string
  seq: bigint
  id: string
  prev_hash: Buffer
  hash: Buffer
  canonical: string
}

export type BreakKind = 'edited' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'replaced'

export interface ChainBreak {
  kind: BreakKind
  chain: string
  /** The sequence number where the chain breaks: the row found there, or the first one missing. */
  seq: string
  /** The row found there, when there is one. */
  id?: string
  message: string
}

/** A chain's head as an anchor recorded it. */
export interface ChainHead {
  chain: string
  seq: bigint
  hash: Buffer
}

export interface ChainReport {
  chain: string
  rows: number
  /** Rows retention dropped from the chain, as its cuts say. */
  retained?: string
  /** The last row checked: the chain's head when it is whole. */
  head?: { seq: string; hash: string }
  broken?: ChainBreak
}

/**
 * Rows that retention dropped (`actline audit retain`), as the retention
 * event in the chain recorded them: `from`..`to` are gone, `prev` was the
 * hash before `from`, `last` the hash of `to`. Verify steps over a cut as
 * over the rows it names; a gap no cut explains is a deletion.
 */
export interface ChainCut {
  from: bigint
  to: bigint
  prev: Buffer
  last: Buffer
}

/**
 * Rows of one chain, by sequence number; `anchor` is the head an earlier
 * anchor recorded, if any; `cuts` what retention dropped, by `from`.
 */
export interface VerifyOptions {
  anchor?: ChainHead | undefined
  cuts?: readonly ChainCut[]
  /** Start after this link, taken on trust (`verify --since`): the rows before it are not read. */
  start?: { seq: bigint; hash: Buffer } | undefined
  /** Stop once a row after this sequence number has been checked and found whole (every row at it was read): the report's head is where to go on from. */
  until?: bigint | undefined
}

/**
 * What an anchor's head says of a chain read to `last`: truncated when it
 * ends before the head, replaced when the row at the head's sequence
 * number (`there`) is another one, unless retention cut it. The one rule
 * for this streaming verifier and the store's scan (audit-chain-store.ts).
 */
export function againstAnchor(chain: string, last: bigint, anchor: ChainHead, there: { hash: Buffer; id: string } | undefined, cut: boolean): ChainBreak | undefined {
  if (last < anchor.seq) return { kind: 'truncated', chain, seq: (last + 1n).toString(), message: `the chain ends at ${last}, the anchor's head is ${anchor.seq}: rows after ${last} were removed` }
  if (!cut && !there?.hash.equals(anchor.hash)) return { kind: 'replaced', chain, seq: anchor.seq.toString(), ...(there && { id: there.id }), message: `row ${anchor.seq} is not the one the anchor recorded: the chain was replaced` }
  return undefined
}

/** Whether retention's cuts removed sequence number `seq`. */
export function cutAway(cuts: readonly ChainCut[], seq: bigint): boolean {
  return cuts.some((c) => c.from <= seq && seq <= c.to)
}

export async function verifyChain(chain: string, rows: AsyncIterable<StoredChainRow>, { anchor, cuts = [], start, until }: VerifyOptions = {}): Promise<ChainReport> {
  const cutAt = new Map(cuts.map((c) => [c.from, c]))
  let retained = 0n
  let prev: StoredChainRow | undefined
  let beforePrev: StoredChainRow | undefined
  let held: StoredChainRow | undefined
  let atAnchor: StoredChainRow | undefined
  let count = 0
  const report = (broken: ChainBreak): ChainReport => ({ chain, rows: count, ...(prev && { head: head(prev) }), broken })
  const iterator = rows[Symbol.asyncIterator]()
  const next = async () => {
    if (held) {
      const r = held
      held = undefined
      return r
    }
    const r = await iterator.next()
    return r.done ? undefined : r.value
  }
  // Where the chain stands: after the last row checked, or after a cut.
  let at0 = start ?? { seq: 0n, hash: GENESIS }
  for (let row = await next(); row; row = await next()) {
    for (let cut = cutAt.get(at0.seq + 1n); cut && row.seq > at0.seq + 1n && cut.prev.equals(at0.hash); cut = cutAt.get(at0.seq + 1n)) {
      retained += cut.to - cut.from + 1n
      at0 = { seq: cut.to, hash: cut.last }
    }
    const expected = at0.seq + 1n
    const prevHash = at0.hash
    const at = { chain, seq: row.seq.toString(), id: String(row.id) }
    if (prev && row.seq === prev.seq) return report({ kind: 'inserted', ...at, message: `sequence ${row.seq} is used twice (rows ${prev.id} and ${row.id}): a row was inserted` })
    if (row.seq > expected) {
      const missing = row.seq - expected
      return report({ kind: 'deleted', chain, seq: expected.toString(), id: at.id, message: `${missing === 1n ? `row ${expected} is` : `rows ${expected}-${row.seq - 1n} are`} missing (the next row, ${row.seq}, links to ${row.prev_hash.equals(prevHash) ? 'the row before them' : 'them'}): deleted` })
    }
    if (!row.prev_hash.equals(prevHash)) {
      // A row exchanged with the one after it links to that one.
      held = await next()
      if (held && row.prev_hash.equals(held.hash)) return report({ kind: 'reordered', ...at, message: `row ${row.seq} links to the row after it (${held.id}): rows exchanged places` })
      // Links to the row two back: the one just before it was put in between (and the rest renumbered).
      if (prev && prev.seq === at0.seq && row.prev_hash.equals(beforePrev?.hash ?? GENESIS)) return report({ kind: 'inserted', chain, seq: prev.seq.toString(), id: String(prev.id), message: `row ${prev.seq} (${prev.id}) is not part of the chain: the row after it links to the one before it; a row was inserted` })
      const selfConsistent = hashLink(row.prev_hash, row.canonical).equals(row.hash)
      return report({ kind: selfConsistent ? 'inserted' : 'edited', ...at, message: selfConsistent ? `row ${row.seq} does not link to row ${prev?.seq ?? 'none'} before it: a row was inserted` : `row ${row.seq} does not link to the row before it, nor match its own hash` })
    }
    if (!hashLink(prevHash, row.canonical).equals(row.hash)) return report({ kind: 'edited', ...at, message: `row ${row.seq} (${row.id}) does not match its hash: it was edited` })
    if (row.seq === anchor?.seq) atAnchor = row
    beforePrev = prev
    prev = row
    at0 = { seq: row.seq, hash: row.hash }
    count++
    if (until !== undefined && row.seq > until) break
  }
  const broken = anchor && againstAnchor(chain, at0.seq, anchor, atAnchor, cutAway(cuts, anchor.seq))
  if (broken) return report(broken)
  return { chain, rows: count, ...(retained > 0n && { retained: retained.toString() }), ...(prev && { head: head(prev) }) }
}

function head(r: StoredChainRow) {
  return { seq: r.seq.toString(), hash: r.hash.toString('hex') }
}
