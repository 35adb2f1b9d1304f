/**
 * The real `actline start` process: SIGTERM and SIGINT stop intake, flush
 * every queue to both stores, and exit 0 in bounded time.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { chRows, openStores, pgRows, post, tempDir, testConfig } from '../helpers/stores.ts'

const dir = tempDir()
afterAll(() => dir.remove())

interface Started { child: ChildProcess; url: string; exited: Promise<number | null> }

async function startProcess(configFile: string): Promise<Started> {
  const child = spawn(process.execPath, ['bin/actline.js', 'start', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('collector did not start within 120 s')), 120_000)
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /"url":"(http:[^"]+)"/.exec(line)
      if (m) { clearTimeout(timer); resolve(m[1]!) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`collector exited early with ${code}`)) })
  })
  return { child, url, exited }
}

describe('graceful shutdown of the real process', () => {
  // A batch timeout far past the test: rows are still queued at the signal,
  // so only the shutdown flush can put them in the stores.
  const configFile = join(dir.path, 'collector.yaml')
  writeFileSync(configFile, [
    `data_dir: ${dir.path}`,
    'server: { port: 0, shutdown_timeout_ms: 20000 }',
    'pipeline: { batch: { send_batch_size: 100000, timeout_ms: 600000 } }',
  ].join('\n'))

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`flushes every queued activity to both stores and exits 0 on ${signal}`, async () => {
      const { child, url, exited } = await startProcess(configFile)
      const ids: string[] = []
      for (let i = 0; i < 5; i++) {
        const body = Array.from({ length: 200 }, (_, j) => JSON.stringify({ action: 'shutdown.test', source: 'user', entity_id: `${signal}-${i}-${j}` })).join('\n')
        const res = await post(url, body, { 'content-type': 'application/x-ndjson' })
        expect(res.status).toBe(200)
        ids.push(...res.json.ids)
      }
      const signalled = Date.now()
      child.kill(signal)
      expect(await exited).toBe(0)
      expect(Date.now() - signalled).toBeLessThan(20_000)

      const stores = await openStores(testConfig(dir.path))
      try {
        expect(await chRows(stores.clickhouse, ids)).toHaveLength(1000)
        expect(await pgRows(stores.postgres, ids)).toHaveLength(1000)
      } finally {
        await stores.close()
      }
    })
  }
})
