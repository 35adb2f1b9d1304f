/**
 * The query API shows the chain (issue 17): /api/v1/audit rows carry their
 * link, and GET /api/v1/audit/verify (admin) verifies a tenant's chain as
 * `actline audit verify` does; a real collector, a real HTTP client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { caughtUp, post, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'
import { asSuperuser } from '../helpers/tamper.ts'
import { authWithKeys, KEYS } from '../helpers/keys.ts'

describe('the audit API and the hash chain', () => {
  const dir = tempDir()
  let c: RunningCollector
  const get = async (path: string, key: string = KEYS.admin) => {
    const res = await fetch(`${c.url}${path}`, { headers: { authorization: `Bearer ${key}` } })
    return { status: res.status, json: (await res.json()) as any }
  }

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path, { auth: authWithKeys() }))
    const events = Array.from({ length: 12 }, (_, i) => ({ source: 'user', action: 'invoice.approved', tenant_id: i % 3 ? 'acme' : 'initech', actor_id: `u${i}`, timestamp: Date.now() - 60_000 + i }))
    const res = await post(c.url, events.map((e) => JSON.stringify(e)).join('\n'), { 'content-type': 'application/x-ndjson', authorization: `Bearer ${KEYS.ingest}` })
    expect(res.status).toBe(200)
    await caughtUp(c.collector)
  })
  afterAll(async () => {
    await c?.collector.shutdown()
    dir.remove()
  })

  it('/api/v1/audit rows carry their chain, sequence number and hashes, linked to each other', async () => {
    const { status, json } = await get('/api/v1/audit?tenant=acme&limit=100', KEYS.read)
    expect(status).toBe(200)
    const rows = [...json.data].sort((a: any, b: any) => Number(a.chain_seq) - Number(b.chain_seq))
    expect(rows.map((r: any) => r.chain_seq)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8'])
    expect(rows.every((r: any) => r.chain === 'acme' && /^[0-9a-f]{64}$/.test(r.row_hash))).toBe(true)
    expect(rows[0].prev_hash).toBe('0'.repeat(64))
    for (let i = 1; i < rows.length; i++) expect(rows[i].prev_hash).toBe(rows[i - 1].row_hash)
  })

  it('GET /api/v1/audit/verify verifies a tenant\'s chain, for the admin scope only', async () => {
    const ok = await get('/api/v1/audit/verify?tenant=acme')
    expect(ok).toMatchObject({ status: 200, json: { ok: true, chain: 'acme', rows: 8, unchained: 0, head: { seq: '8' } } })
    expect((await get('/api/v1/audit/verify?tenant=nobody')).json).toMatchObject({ ok: true, chain: 'nobody', rows: 0 })
    const forbidden = await get('/api/v1/audit/verify?tenant=acme', KEYS.read)
    expect(forbidden).toMatchObject({ status: 403, json: { error: 'ACT_ERR_FORBIDDEN', details: { required_scope: 'admin' } } })
    const bad = await get('/api/v1/audit/verify')
    expect(bad.status).toBe(400)
    expect(bad.json).toMatchObject({ error: expect.any(String), message: expect.stringContaining('tenant') })
  })

  it('names the row a superuser edited', async () => {
    await asSuperuser(storesOf(c.collector).postgres, `UPDATE audit_log SET actor_id = 'someone-else' WHERE chain = 'initech' AND chain_seq = 2`)
    const { status, json } = await get('/api/v1/audit/verify?tenant=initech')
    expect(status).toBe(200)
    expect(json).toMatchObject({ ok: false, chain: 'initech', rows: 1, broken: { kind: 'edited', seq: '2', message: expect.stringContaining('does not match its hash') } })
  })
})
