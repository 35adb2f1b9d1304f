/**
 * The file exporter end to end, as a user runs it: events posted over HTTP
 * to a collector process land in rotated NDJSON files, and every
 * acknowledged id is in the final files exactly once across kill -9 and
 * restarts; no final file is ever half written.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { eventually, tempDir } from '../helpers/stores.ts'
import { backlog, killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'
import { metric, mountTmpfs, startLoad } from '../helpers/faults.ts'

afterAll(killChildren)
const dir = tempDir('actline-file-export-')
afterAll(() => dir.remove())
const exportDir = join(dir.path, 'archive')
const ROUNDS = 6

const finals = (where = exportDir) => readdirSync(where).filter((f) => f.endsWith('.ndjson')).sort()

/** Every line of every final file; a line that is not a whole activity fails the test. */
function finalRows(where = exportDir): { id: string; action: string }[] {
  return finals(where).flatMap((name) => {
    const text = readFileSync(join(where, name), 'utf8')
    expect(text.endsWith('\n')).toBe(true)
    return text.trimEnd().split('\n').map((line) => JSON.parse(line))
  })
}

/** Each acked id once in the final files under `where`. */
function expectEachOnce(acked: ReadonlySet<string>, where = exportDir): number {
  const seen = new Map<string, number>()
  for (const row of finalRows(where)) seen.set(row.id, (seen.get(row.id) ?? 0) + 1)
  expect([...acked].filter((id) => !seen.has(id))).toEqual([])
  expect([...seen].filter(([, n]) => n > 1)).toEqual([])
  return seen.size
}

describe('file exporter across kill -9', () => {
  it('has every acknowledged id in the final files once, and no half file under a final name', async () => {
    // Only the file exporter, its directory from the environment; small files, so the run rotates many times.
    const config = writeConfig(
      dir.path,
      `data_dir: ${dir.path}\nserver: { port: 0 }\npipeline: { batch: { timeout_ms: 100, send_batch_size: 500 } }\n` +
        `exporters: { clickhouse: { enabled: false }, postgres: { enabled: false }, file: { enabled: true, rotate_bytes: 262144 } }\n`,
    )
    const env = { ACTLINE_FILE_EXPORT_DIR: exportDir }
    const acked = new Set<string>()
    for (let round = 0; round < ROUNDS; round++) {
      const c = await startCollectorProcess(config, env)
      const load = startLoad(c.url, { connections: 4, action: 'file.kill9' })
      await eventually('some rows acknowledged and exported', async () => load.acked.size > 5_000 && finals().length > round, 60_000)
      // Readers of final names see whole files while the collector writes.
      finalRows()
      c.child.kill('SIGKILL')
      await c.exited
      await load.stop()
      for (const id of load.acked) acked.add(id)
    }
    // A last start drains what the log holds; a graceful stop closes the open file.
    const last = await startCollectorProcess(config, env)
    await eventually('drained', async () => (await backlog(last.url)) === 0, 60_000)
    last.child.kill('SIGTERM')
    expect(await last.exited).toBe(0)

    expect(readdirSync(exportDir).filter((f) => f.endsWith('.tmp') && !f.startsWith('.'))).toEqual([])
    const stored = expectEachOnce(acked)
    console.log(`file export: ${acked.size} acked ids across ${ROUNDS} kills, ${stored} ids in ${finals().length} files`)
    expect(acked.size).toBeGreaterThan(ROUNDS * 5_000)
  })
})

// A real full disk under the export directory: a tmpfs this test mounts (root; .ci/run is).
const diskDir = join(dir.path, 'smalldisk')
const { mounted, unmount } = mountTmpfs(diskDir, '1m', 'file exporter full-disk test')
afterAll(unmount)

describe.skipIf(!mounted)('file exporter on a full disk', () => {
  it('retries while the disk is full, ingest goes on into the log, and every acknowledged id lands once when it has room again', async () => {
    const config = writeConfig(
      dir.path,
      `data_dir: ${join(dir.path, 'disk-data')}\nserver: { port: 0 }\npipeline: { batch: { timeout_ms: 100, send_batch_size: 500 }, retry: { max_interval_ms: 500 } }\n` +
        `exporters: { clickhouse: { enabled: false }, postgres: { enabled: false }, file: { enabled: true, directory: ${diskDir}, rotate_bytes: 131072 } }\n`,
    )
    const c = await startCollectorProcess(config)
    const load = startLoad(c.url, { connections: 2, action: 'file.full' })
    await eventually('the file exporter failing on the full disk', async () => (await metric(c.url, 'actline_exporter_failing', 'exporter="file"')) === 1, 60_000)
    // Acknowledged while the export disk is full: they wait in the log.
    const before = load.acked.size
    await eventually('ingest still acknowledged', async () => load.acked.size > before + 1_000, 30_000)
    const ready = await fetch(`${c.url}/readyz`)
    expect(ready.status).toBe(503)
    expect(await ready.text()).toMatch(/file failing since .*ENOSPC/)
    await load.stop()
    // The operator grows the disk.
    execFileSync('mount', ['-o', 'remount,size=64m', diskDir])
    await eventually('drained', async () => (await backlog(c.url)) === 0, 60_000)
    expect(await metric(c.url, 'actline_exporter_failing', 'exporter="file"')).toBe(0)
    c.child.kill('SIGTERM')
    expect(await c.exited).toBe(0)
    expect(readdirSync(diskDir).filter((f) => f.endsWith('.tmp') && !f.startsWith('.'))).toEqual([])
    const stored = expectEachOnce(load.acked, diskDir)
    console.log(`file export on a full disk: ${load.acked.size} acked, ${stored} ids in ${finals(diskDir).length} files`)
  })
})
