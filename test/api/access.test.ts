/**
 * API keys, scopes and the per-key rate limit, on a real collector: what a
 * client without a key, with the wrong key or with too many requests sees.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, parseConfig } from '../../collector/config.ts'
import { startCollector, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'
import { authWithKeys, KEYS as SCOPE_KEYS } from '../helpers/keys.ts'

const KEYS = { ...SCOPE_KEYS, other: 'other-read-key-0123456789abcd' }

describe('API keys and rate limit', () => {
  const dir = tempDir()
  let c: RunningCollector
  const call = async (path: string, key?: string, init: RequestInit = {}) => {
    const res = await fetch(`${c.url}${path}`, { ...init, headers: { ...(key && { authorization: `Bearer ${key}` }), ...(init.headers as object) } })
    const text = await res.text()
    return { status: res.status, headers: res.headers, text, json: (text.startsWith('{') ? JSON.parse(text) : undefined) as any }
  }

  beforeAll(async () => {
    c = await startCollector(
      testConfig(dir.path, {
        auth: authWithKeys({ name: 'second-reader', key: KEYS.other, scopes: ['read'] }),
        api: { rate_limit: { max: 5, window_ms: 60_000 } },
      }),
    )
  })

  afterAll(async () => {
    await c?.collector.shutdown()
    dir.remove()
  })

  it('refuses a query without a key (401 JSON, WWW-Authenticate) and with an unknown one', async () => {
    const none = await call('/api/v1/cache/stats')
    expect(none.status).toBe(401)
    expect(none.json).toMatchObject({ error: 'ACT_ERR_UNAUTHORIZED', details: { required_scope: 'read' } })
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/)
    const wrong = await call('/api/v1/cache/stats', 'not-a-key-of-ours-0123456789')
    expect(wrong.status).toBe(401)
    expect(wrong.json.message).toMatch(/not valid/)
  })

  it('gates each route by its scope: ingest to ingest, queries to read, cache clear to admin', async () => {
    const body = JSON.stringify({ source: 'user', action: 'scoped.ingest' })
    const ingest = (key: string) => call('/v1/activities', key, { method: 'POST', body, headers: { 'content-type': 'application/json' } })
    expect((await ingest(KEYS.ingest)).status).toBe(200)
    const readOnIngest = await ingest(KEYS.read)
    expect(readOnIngest.status).toBe(403)
    expect(readOnIngest.json).toMatchObject({ error: 'ACT_ERR_FORBIDDEN', details: { required_scope: 'ingest', granted_scopes: ['read'] } })
    expect((await call('/api/v1/cache/stats', KEYS.ingest)).status).toBe(403)
    expect((await call('/api/v1/cache/stats', KEYS.read)).status).toBe(200)
    expect((await call('/api/v1/cache/clear', KEYS.read, { method: 'POST' })).status).toBe(403)
    // admin grants read too
    expect((await call('/api/v1/cache/clear', KEYS.admin, { method: 'POST' })).status).toBe(200)
    expect((await call('/api/v1/cache/stats', KEYS.admin)).status).toBe(200)
    // X-API-Key works as well as Bearer
    expect((await fetch(`${c.url}/api/v1/cache/stats`, { headers: { 'x-api-key': KEYS.read } })).status).toBe(200)
  })

  it('leaves health probes and metrics open', async () => {
    expect((await call('/healthz')).status).toBe(200)
    const metrics = await call('/metrics')
    expect(metrics.status).toBe(200)
    expect(metrics.text).toMatch(/^# HELP/)
  })

  it('limits each key on its own, with a 429 JSON and Retry-After', async () => {
    const statuses: number[] = []
    let last: Awaited<ReturnType<typeof call>> | undefined
    for (let i = 0; i < 7; i++) {
      last = await call('/api/v1/openapi.json', KEYS.other)
      statuses.push(last.status)
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429])
    expect(last!.json).toMatchObject({ error: 'ACT_ERR_RATE_LIMITED', details: { limit: 5 } })
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0)
    // Another key still has its whole allowance.
    expect((await call('/api/v1/openapi.json', KEYS.admin)).status).toBe(200)
  })
})

describe('an open collector stays on loopback', () => {
  it('refuses a non-loopback address without keys, naming the fix', () => {
    expect(() => parseConfig({ server: { host: '0.0.0.0' } })).toThrow(ConfigError)
    expect(() => parseConfig({ server: { host: '0.0.0.0' } })).toThrow(/auth\.keys/)
    expect(() => parseConfig({ server: { host: '0.0.0.0' }, auth: { keys: [{ name: 'a', key: KEYS.read, scopes: ['read'] }] } })).not.toThrow()
    for (const host of ['127.0.0.1', '::1', 'localhost', '127.0.0.2']) expect(() => parseConfig({ server: { host } })).not.toThrow()
  })

  it('refuses short keys and duplicate names', () => {
    expect(() => parseConfig({ auth: { keys: [{ name: 'a', key: 'short', scopes: ['read'] }] } })).toThrow(/24 characters/)
    expect(() =>
      parseConfig({ auth: { keys: [{ name: 'a', key: KEYS.read, scopes: ['read'] }, { name: 'a', key: KEYS.admin, scopes: ['admin'] }] } }),
    ).toThrow(/unique/)
  })
})
