/**
 * The write-ahead log on a real, small filesystem (a tmpfs this test
 * mounts) that fills up under load: requests the log cannot take answer
 * 503 with Retry-After and nothing of them is acknowledged; exporters keep
 * advancing and freeing segments; once space returns the collector takes
 * traffic again by itself; after a kill -9 and a restart every acknowledged
 * id is in both stores exactly once.
 */
import { rmSync, statfsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { eventually, tempDir, testConfig } from '../helpers/stores.ts'
import { backlog, killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'
import { expectStoredOnce, mountTmpfs, startLoad } from '../helpers/faults.ts'

const dir = tempDir('actline-disk-')
const mountPoint = join(dir.path, 'walfs')
const { mounted, unmount } = mountTmpfs(mountPoint, '8m', 'full-disk test')
afterAll(() => {
  killChildren()
  unmount()
  dir.remove()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe.skipIf(!mounted)('a full disk under the write-ahead log', () => {
  it('answers 503 for what it cannot store, recovers when space returns, and loses nothing acknowledged across a kill -9', async () => {
    const configFile = writeConfig(dir.path, [
      `data_dir: ${dir.path}/data`,
      'server: { port: 0 }',
      `wal: { dir: ${mountPoint}, segment_bytes: 262144 }`,
      'pipeline: { batch: { timeout_ms: 300 } }',
    ].join('\n'))
    const c = await startCollectorProcess(configFile)
    // Leave about 700 KB: a few hundred milliseconds of this load.
    const { bavail, bsize } = statfsSync(mountPoint)
    const filler = join(mountPoint, 'filler')
    writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - 700 * 1024)))

    const readyzSaw: string[] = []
    let watching = true
    const watcher = (async () => {
      while (watching) {
        const r = await fetch(`${c.url}/readyz`).catch(() => undefined)
        if (r?.status === 503) readyzSaw.push((await r.json()).message)
        await sleep(50)
      }
    })()
    const full = startLoad(c.url, { connections: 6 })
    await eventually('a 503 for the full disk', async () => (full.statuses.get(503) ?? 0) > 3, 60_000)
    await sleep(1_000)
    await full.stop()
    watching = false
    await watcher
    const refused = full.samples.get(503)!.map((t) => JSON.parse(t))
    expect(refused[0]).toMatchObject({ error: 'ACT_ERR_STORAGE_UNAVAILABLE', details: { nothing_was_accepted: true } })
    expect(readyzSaw.some((m) => /disk is full|ENOSPC/.test(m))).toBe(true)
    expect(full.acked.size).toBeGreaterThan(0)

    // Space returns: traffic is taken again without a restart.
    rmSync(filler)
    const after = startLoad(c.url, { connections: 4 })
    await eventually('200s again once space returned', async () => after.acked.size > 2_000, 60_000)
    c.child.kill('SIGKILL')
    await c.exited
    await after.stop()

    const restarted = await startCollectorProcess(configFile)
    await eventually('log drained after the restart', async () => (await backlog(restarted.url)) === 0, 120_000)
    restarted.child.kill('SIGTERM')
    expect(await restarted.exited).toBe(0)
    const acked = [...full.acked, ...after.acked]
    console.log(`full disk: ${full.acked.size} acknowledged while filling (${full.statuses.get(503)} answered 503), ${after.acked.size} after space returned`)
    await expectStoredOnce(testConfig(`${dir.path}/data`, { wal: { dir: mountPoint } }), acked)
  }, 300_000)
})
