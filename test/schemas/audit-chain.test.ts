import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { canonicalRow, chainOf, chainValuesOf, GENESIS, ipHex, jsonbText, linkHash, numericText, type ChainValues } from '../../schemas/audit-chain.ts'
import { parseActivity } from '../../schemas/activity.ts'

const doc = readFileSync('docs/audit-integrity.md', 'utf8')
/** The code blocks of docs/audit-integrity.md that are a canonical row, and the hash after each. */
const vectors = [...doc.matchAll(/```\n(\[1,[^\n]+\])\n```\n\nhash, with `prev_hash` = [^:]+:\n`([0-9a-f]{64})`/g)].map((m) => ({ line: m[1]!, hash: m[2]! }))

const row1 = { id: '01938A5E-7C00-7000-8000-000000000001', timestamp: 1764547200123000n, received_at: 1764547200456000n, source: 'user', action: 'invoice.paid', category: 'billing', severity: 'info', status: 'success', entity_type: 'invoice', entity_id: 'inv-42', actor_id: 'u-7', tenant_id: 'acme', service: 'billing-api', trace_id: null, span_id: null, correlation_id: null, duration_ms: 12.5, details: { path: '/api/v1/invoices/42', note: 'é 🧾 "q"\n', amount: 100, ratio: 1.5e-7 }, ip: '2001:DB8:0:0::1', user_agent: null, attributes: { version: '1.4.2', region: 'eu-west-1' } } as unknown as ChainValues
const row2 = { id: '01938a5e-7c00-7000-8000-000000000002', timestamp: 1764547201000000n, received_at: 1764547201001000n, source: 'user', action: 'user.login', category: 'authentication', severity: 'notice', status: 'failure', actor_id: 'u-7', tenant_id: 'acme', duration_ms: null, details: 'wrong password', ip: '10.0.0.1', user_agent: 'curl/8.5', attributes: {} } as unknown as ChainValues

describe('the audit hash chain (docs/audit-integrity.md)', () => {
  it("gives the documented vectors: the canonical lines and their hashes, chained", () => {
    expect(vectors).toHaveLength(2)
    expect(canonicalRow('acme', 1n, row1).toString('utf8')).toBe(vectors[0]!.line)
    expect(canonicalRow('acme', 2n, row2).toString('utf8')).toBe(vectors[1]!.line)
    const h1 = linkHash(GENESIS, 'acme', 1n, row1)
    expect(h1.toString('hex')).toBe(vectors[0]!.hash)
    expect(linkHash(h1, 'acme', 2n, row2).toString('hex')).toBe(vectors[1]!.hash)
    // The documented lines alone give the documented hashes: a verifier needs nothing but the page.
    const sha = (prev: Buffer, line: string) => createHash('sha256').update(prev).update(Buffer.from(line, 'utf8')).digest()
    const d1 = sha(Buffer.alloc(32), vectors[0]!.line)
    expect(d1.toString('hex')).toBe(vectors[0]!.hash)
    expect(sha(d1, vectors[1]!.line).toString('hex')).toBe(vectors[1]!.hash)
  })

  it('changes the hash for any edit, including the sequence number and the chain', () => {
    const base = linkHash(GENESIS, 'acme', 1n, row1).toString('hex')
    expect(linkHash(GENESIS, 'acme', 2n, row1).toString('hex')).not.toBe(base)
    expect(linkHash(GENESIS, 'globex', 1n, row1).toString('hex')).not.toBe(base)
    expect(linkHash(GENESIS, 'acme', 1n, { ...row1, actor_id: 'someone-else' }).toString('hex')).not.toBe(base)
    expect(linkHash(GENESIS, 'acme', 1n, { ...row1, timestamp: 1764547200123001n }).toString('hex')).not.toBe(base)
    expect(linkHash(Buffer.alloc(32, 1), 'acme', 1n, row1).toString('hex')).not.toBe(base)
  })

  it('encodes values, not their spelling: key order, IPv6 form and upper-case ids do not matter', () => {
    const respelled = { ...row1, id: String(row1.id).toLowerCase(), ip: '2001:db8::1', details: { ratio: 0.00000015, amount: 100, path: '/api/v1/invoices/42', note: 'é 🧾 "q"\n' }, attributes: { region: 'eu-west-1', version: '1.4.2' } } as ChainValues
    expect(canonicalRow('acme', 1n, respelled)).toEqual(canonicalRow('acme', 1n, row1))
    expect(ipHex('::FFFF:10.0.0.1')).toBe(ipHex('::ffff:a00:1'))
    expect(ipHex('::ffff:10.0.0.1')).toBe('00000000000000000000ffff0a000001')
    expect(ipHex('10.0.0.1')).toBe('0a000001')
    expect(ipHex('::')).toBe('0'.repeat(32))
    expect(ipHex('1::')).toBe(`0001${'0'.repeat(28)}`)
  })

  it("writes JSON as PostgreSQL's jsonb prints it: keys shorter first then bytewise, numbers without exponents", () => {
    expect(jsonbText({ b: [1, { d: 1, c: -0 }], aa: 'x\u0001', 'é': 1, ab: 2 })).toBe('{"b": [1, {"c": 0, "d": 1}], "aa": "x\\u0001", "ab": 2, "é": 1}')
    expect([1e21, 1.5e-7, -2.5e-10, 5e-324, 123.456, 0.1 + 0.2, 1e300].map(numericText)).toEqual([
      '1000000000000000000000', '0.00000015', '-0.00000000025', `0.${'0'.repeat(323)}5`, '123.456', '0.30000000000000004', `1${'0'.repeat(300)}`,
    ])
  })

  it('puts rows without a tenant in the chain "" and reads an activity as stored (microseconds)', () => {
    const r = parseActivity({ action: 'x.y', source: 'user', timestamp: 1764547200123 })
    if (!r.ok) throw new Error('bad fixture')
    expect(chainOf(r.activity.tenant_id)).toBe('')
    expect(chainOf('acme')).toBe('acme')
    const values = chainValuesOf(r.activity)
    expect(values.timestamp).toBe(1764547200123000n)
    expect(canonicalRow('', 1n, values).toString('utf8')).toContain(`"1764547200123000"`)
  })
})
