/**
 * audit.anchor_interval: a running collector anchors its chain heads under
 * the data directory, signed, and shows them on /metrics.
 */
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readAnchor, publicKey } from '../../schemas/audit-anchor.ts'
import { verifyAuditLog } from '../../schemas/audit-chain-store.ts'
import { caughtUp, eventually, post, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'
import { parseConfig } from '../../collector/config.ts'

describe('the periodic anchor', () => {
  const dir = tempDir()
  let c: RunningCollector
  const { privateKey, publicKey: pub } = generateKeyPairSync('ed25519')
  // The 32-byte seed in base64, the other form the key may take.
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(16).toString('base64')

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path, { audit: { anchor_interval: '1s', anchor_keep: 2, signing_key: seed } }))
    const events = ['acme', 'acme', 'say "hi"\\', 'acme'].map((tenant) => JSON.stringify({ source: 'user', action: 'door.opened', tenant_id: tenant }))
    expect((await post(c.url, events.join('\n'), { 'content-type': 'application/x-ndjson' })).status).toBe(200)
    await caughtUp(c.collector)
  })
  afterAll(async () => {
    await c?.collector.shutdown()
    dir.remove()
  })

  it('writes signed anchors of every head under the data directory, which verify then checks against', async () => {
    const anchors = join(dir.path, 'audit-anchors')
    let file = ''
    await eventually('an anchor with the acme chain at 3', async () => {
      if (!existsSync(anchors)) return false
      const files = readdirSync(anchors).filter((f) => f.endsWith('.json')).sort()
      file = join(anchors, files[files.length - 1] ?? '')
      return files.length > 0 && readFileSync(file, 'utf8').includes('"seq": "3"')
    })
    const anchor = readAnchor(readFileSync(file, 'utf8'), publicKey(pub.export({ format: 'pem', type: 'spki' }).toString()))
    expect(anchor.signature).toBe('verified')
    expect(anchor.heads.map((h) => [h.chain, h.seq])).toEqual([['acme', 3n], ['say "hi"\\', 1n]])
    const pool = storesOf(c.collector).postgres
    const db = { rows: async (sql: string, params?: readonly unknown[]) => (await pool.query(sql, params as unknown[])).rows }
    expect(await verifyAuditLog(db, { anchor: anchor.heads })).toMatchObject({ ok: true, rows: 4 })
  })

  it('keeps the newest anchor_keep anchors and leaves other files there alone', async () => {
    const anchors = join(dir.path, 'audit-anchors')
    await eventually('the first anchor', async () => existsSync(anchors))
    writeFileSync(join(anchors, 'copied-by-hand.json'), '{}')
    const seen = new Set<string>()
    const list = () => readdirSync(anchors).filter((f) => /^anchor-.+\.json$/.test(f)).sort()
    await eventually('four anchors written', async () => {
      for (const f of list()) seen.add(f)
      return seen.size >= 4
    }, 15_000)
    const kept = list()
    expect(kept).toHaveLength(2)
    // Every anchor removed is older than both kept (one more may have come since).
    const removed = [...seen].filter((f) => !kept.includes(f))
    expect(removed.length).toBeGreaterThanOrEqual(2)
    expect(removed.every((f) => f < kept[0]!)).toBe(true)
    expect(existsSync(join(anchors, 'copied-by-hand.json'))).toBe(true)
  })

  it("shows each chain's head on /metrics, the tenant's quote and backslash escaped", async () => {
    const text = await (await fetch(`${c.url}/metrics`)).text()
    expect(text).toContain('# TYPE actline_audit_chain_head_sequence gauge')
    expect(text).toMatch(/^actline_audit_chain_head_sequence\{chain="acme"\} 3$/m)
    expect(text).toContain('actline_audit_chain_head_sequence{chain="say \\"hi\\"\\\\"} 1')
  })

  it('refuses a key it cannot read at config time, without printing it', () => {
    const bad = 'not-a-key-but-a-secret-all-the-same'
    let message = ''
    try {
      parseConfig({ audit: { signing_key: bad } })
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).toMatch(/audit\.signing_key is neither PEM nor 32 bytes of base64/)
    expect(message).not.toContain(bad)
    expect(() => parseConfig({ audit: { anchor_interval: '10 minutes' } })).toThrow(/a duration such as '30s'/)
  })
})
