import { describe, expect, it } from 'vitest'
import { canonicalText, chainValuesOf, GENESIS, linkHash, type ChainValues } from '../../schemas/audit-chain.ts'
import { verifyChain, type ChainHead, type StoredChainRow } from '../../schemas/audit-verify.ts'

/** A row as the table holds it: its values; the database gives verify their canonical text at the row's current place. */
type Row = Omit<StoredChainRow, 'id' | 'canonical'> & { values: ChainValues }
import { parseActivity } from '../../schemas/activity.ts'

/** A whole chain of n rows, as the writer will store them. */
function chain(n: number, name = 'acme'): Row[] {
  const rows: Row[] = []
  let prev = GENESIS
  for (let i = 1; i <= n; i++) {
    const r = parseActivity({ action: 'invoice.paid', source: 'user', tenant_id: name, actor_id: `u-${i}`, timestamp: 1764547200000 + i })
    if (!r.ok) throw new Error('bad fixture')
    const values = chainValuesOf(r.activity)
    const hash = linkHash(prev, name, BigInt(i), values)
    rows.push({ chain: name, seq: BigInt(i), prev_hash: prev, hash, values })
    prev = hash
  }
  return rows
}

async function* stream(rows: Row[]): AsyncGenerator<StoredChainRow> {
  for (const { values, ...r } of [...rows].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0))) yield { ...r, id: String(values.id), canonical: canonicalText(r.chain, r.seq, values) }
}

const verify = (rows: Row[], anchor?: ChainHead) => verifyChain('acme', stream(rows), { anchor })

describe('verifying a hash chain', () => {
  it('passes a whole chain and reports its head', async () => {
    const rows = chain(50)
    const r = await verify(rows)
    expect(r).toEqual({ chain: 'acme', rows: 50, head: { seq: '50', hash: rows[49]!.hash.toString('hex') } })
    expect((await verify([])).broken).toBeUndefined()
  })

  it("names an edited row (UPDATE ... SET actor_id = 'someone-else')", async () => {
    const rows = chain(10)
    rows[4] = { ...rows[4]!, values: { ...rows[4]!.values, actor_id: 'someone-else' } }
    expect((await verify(rows)).broken).toMatchObject({ kind: 'edited', seq: '5', id: rows[4]!.values.id })
  })

  it('names deleted rows by the first missing sequence number', async () => {
    const rows = chain(10)
    expect((await verify(rows.filter((r) => r.seq !== 4n))).broken).toMatchObject({ kind: 'deleted', seq: '4' })
    expect((await verify(rows.filter((r) => r.seq < 3n || r.seq > 6n))).broken).toMatchObject({ kind: 'deleted', seq: '3', message: expect.stringContaining('rows 3-6 are missing') })
    expect((await verify(rows.filter((r) => r.seq !== 1n))).broken).toMatchObject({ kind: 'deleted', seq: '1' })
  })

  it('names an inserted row: a sequence number used twice, or a forged row put in between with the rest renumbered', async () => {
    const rows = chain(10)
    const [forged] = chain(1)
    // The same sequence number as row 6, hashed on row 5 as the writer would.
    const dup = { ...forged!, seq: 6n, prev_hash: rows[4]!.hash, hash: linkHash(rows[4]!.hash, 'acme', 6n, forged!.values) }
    expect((await verify([...rows.slice(0, 6), dup, ...rows.slice(6)])).broken).toMatchObject({ kind: 'inserted', seq: '6' })
    // Put in at 6, the old 6-10 renumbered 7-11 (their stored hashes kept).
    const renumbered = [...rows.slice(0, 5), dup, ...rows.slice(5).map((r) => ({ ...r, seq: r.seq + 1n }))]
    expect((await verify(renumbered)).broken).toMatchObject({ kind: 'inserted', seq: '6', id: forged!.values.id })
  })

  it('names reordered rows: two rows that exchanged their sequence numbers', async () => {
    const rows = chain(10)
    const swapped = rows.map((r) => (r.seq === 4n ? { ...r, seq: 5n } : r.seq === 5n ? { ...r, seq: 4n } : r))
    expect((await verify(swapped)).broken).toMatchObject({ kind: 'reordered', seq: '4', id: rows[4]!.values.id })
  })

  it('with an anchor, names a truncated tail and a replaced chain', async () => {
    const rows = chain(10)
    const anchor = { chain: 'acme', seq: 10n, hash: rows[9]!.hash }
    expect((await verify(rows, anchor)).broken).toBeUndefined()
    expect((await verify(rows.slice(0, 7), anchor)).broken).toMatchObject({ kind: 'truncated', seq: '8' })
    // The whole chain rebuilt from genesis: every link holds, but the anchor's row is another.
    const rebuilt = chain(10)
    expect((await verify(rebuilt)).broken).toBeUndefined()
    expect((await verify(rebuilt, anchor)).broken).toMatchObject({ kind: 'replaced', seq: '10' })
    // Without the anchor, a removed tail cannot be told from a shorter chain.
    expect((await verify(rows.slice(0, 7))).broken).toBeUndefined()
  })

  it('steps over rows retention dropped, as its cuts record them, and still names a deletion no cut explains', async () => {
    const rows = chain(20)
    const cut = (from: number, to: number) => ({ from: BigInt(from), to: BigInt(to), prev: from === 1 ? GENESIS : rows[from - 2]!.hash, last: rows[to - 1]!.hash })
    // The oldest rows, and one late row in between (its month dropped too).
    const kept = rows.filter((r) => r.seq > 5n && r.seq !== 9n)
    const r = await verifyChain('acme', stream(kept), { cuts: [cut(1, 5), cut(9, 9)] })
    expect(r).toMatchObject({ rows: 14, retained: '6', head: { seq: '20' } })
    expect(r.broken).toBeUndefined()
    // Without the second cut, row 9 is a deletion.
    expect((await verifyChain('acme', stream(kept), { cuts: [cut(1, 5)] })).broken).toMatchObject({ kind: 'deleted', seq: '9' })
    // A cut whose hashes are not the chain's explains nothing.
    expect((await verifyChain('acme', stream(kept), { cuts: [{ ...cut(1, 5), last: rows[0]!.hash }, cut(9, 9)] })).broken).toMatchObject({ kind: 'inserted', seq: '6' })
  })
})
