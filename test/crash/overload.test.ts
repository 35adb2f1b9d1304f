/**
 * Overload: clients that ignore Retry-After, with bodies of 2,000 events, on
 * 16 connections, against a collector process with a memory limit. Memory
 * must stay bounded, the excess must get 429s, everything acknowledged must
 * be stored, and ingest must accept again once the flood stops.
 */
import http from 'node:http'
import { afterAll, describe, expect, it, onTestFinished } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import { eventually, missingFromClickHouse, openStores, tempDir, testConfig } from '../helpers/stores.ts'
import { backlog, startCollectorProcess, writeConfig, killChildren } from '../helpers/process.ts'

const LIMIT_MIB = 900
const SPIKE_MIB = 250
const dir = tempDir('actline-overload-')
// One hook, in this order: a collector left by a failed assertion dies before its directory goes.
afterAll(async () => {
  await killChildren()
  dir.remove()
})

describe('overload', () => {
  it(`stays under ${LIMIT_MIB} MiB, answers 429, loses nothing acknowledged, and recovers`, async () => {
    const configFile = writeConfig(dir.path, [
      `data_dir: ${dir.path}`,
      'server: { port: 0, log_level: info }',
      `pipeline: { memory_limiter: { limit_mib: ${LIMIT_MIB}, spike_limit_mib: ${SPIKE_MIB}, check_interval_ms: 50 } }`,
    ].join('\n'))
    const collector = await startCollectorProcess(configFile)
    const acked = new Set<string>()
    const statuses = new Map<number, number>()
    let peak = 0
    const sampler = setInterval(() => (peak = Math.max(peak, collector.rss())), 25)
    onTestFinished(() => clearInterval(sampler))

    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
    const post = (body: string) =>
      new Promise<number>((resolve) => {
        const req = http.request(`${collector.url}/v1/activities`, { method: 'POST', agent, headers: { 'content-type': 'application/x-ndjson' } }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        })
        req.on('error', () => resolve(0))
        req.end(body)
      })
    const until = Date.now() + 15_000
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (Date.now() < until) {
        const ids = Array.from({ length: 2000 }, () => uuidv7())
        const body = ids.map((id, i) => JSON.stringify({ id, action: 'overload.test', source: i % 3 ? 'system' : 'user', details: { padding: 'x'.repeat(200) } })).join('\n')
        const status = await post(body)
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
        if (status === 200) for (const id of ids) acked.add(id)
      }
    }))
    agent.destroy()
    console.log(`statuses ${JSON.stringify(Object.fromEntries(statuses))}, peak RSS ${Math.round(peak / 2 ** 20)} MiB, ${acked.size} acknowledged`)

    expect(statuses.get(429) ?? 0).toBeGreaterThan(0)
    expect(acked.size).toBeGreaterThan(0)
    // Refusing starts at limit - spike; what was already admitted must fit
    // in the spike allowance, so the hard limit holds.
    expect(peak / 2 ** 20).toBeLessThan(LIMIT_MIB)

    // Recovers: once the backlog is exported, a request is accepted again.
    await eventually('backlog exported', async () => (await backlog(collector.url)) === 0, 180_000)
    await eventually('accepting again', async () => {
      const res = await fetch(`${collector.url}/v1/activities`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'after.flood', source: 'user' }) })
      return res.status === 200
    }, 60_000)
    clearInterval(sampler)
    collector.child.kill('SIGTERM')
    expect(await collector.exited).toBe(0)

    const stores = await openStores(testConfig(dir.path))
    try {
      const ids = [...acked]
      expect(await missingFromClickHouse(stores.clickhouse, ids)).toBe(0)
    } finally {
      await stores.close()
    }
  }, 600_000)
})
