/**
 * The file exporter on a real directory: NDJSON under the contract's field
 * names, final names only for closed files, rotation by size and by time,
 * gzip members, and a batch sent again after a crash written once.
 */
import { spawn } from 'node:child_process'
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { parseActivity, uuidv7, type Activity } from '../../schemas/activity.ts'
import { FileExporterConfig } from '../../exporters/file/config.ts'
import { createFileExporter } from '../../exporters/file/exporter.ts'
import { createLogger } from '../../collector/server/logger.ts'
import { eventually, tempDir } from '../helpers/stores.ts'

const logger = createLogger('silent')
const dirs: { remove(): void }[] = []
afterEach(() => dirs.splice(0).forEach((d) => d.remove()))

function exporterIn(options: Record<string, unknown> = {}) {
  const dir = tempDir('actline-file-')
  dirs.push(dir)
  const config = { ...FileExporterConfig.parse({ enabled: true, ...options }), directory: dir.path }
  return { dir: dir.path, config, exporter: createFileExporter(config, logger) }
}

function activities(n: number, extra: Record<string, unknown> = {}): Activity[] {
  return Array.from({ length: n }, (_, i) => {
    const r = parseActivity({ id: uuidv7(), action: 'file.test', source: 'user', actor_id: `u${i}`, details: { i }, ...extra })
    if (!r.ok) throw new Error(JSON.stringify(r.issues))
    return r.activity
  })
}

const finals = (dir: string) => readdirSync(dir).filter((f) => /\.ndjson(\.gz)?$/.test(f)).sort()
const temps = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp') && !f.startsWith('.'))
const linesOf = (dir: string, name: string) => {
  const bytes = readFileSync(join(dir, name))
  return (name.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
}
const idsIn = (dir: string) => finals(dir).flatMap((f) => linesOf(dir, f).map((r) => r.id as string))

describe('file exporter', () => {
  it('writes one activity per line under the contract field names, in a .tmp file until closed', async () => {
    const { dir, exporter } = exporterIn()
    await exporter.start()
    const batch = activities(3, { ip: '10.0.0.1', trace_id: 'a'.repeat(32) })
    expect(await exporter.export(batch)).toEqual({ status: 'success' })
    expect(finals(dir)).toEqual([])
    expect(temps(dir)).toHaveLength(1)
    await exporter.shutdown()
    expect(temps(dir)).toEqual([])
    const [name] = finals(dir)
    expect(name).toMatch(/^activities-\d{8}T\d{6}\.\d{3}Z-\d{4}\.ndjson$/)
    const rows = linesOf(dir, name!)
    expect(rows.map((r) => r.id)).toEqual(batch.map((a) => a.id))
    expect(Object.keys(rows[0]!)).toEqual(['id', 'timestamp', 'received_at', 'source', 'action', 'category', 'severity', 'status', 'actor_id', 'trace_id', 'details', 'ip', 'attributes'])
    expect(rows[0]).toMatchObject({ timestamp: new Date(batch[0]!.timestamp).toISOString(), action: 'file.test', ip: '10.0.0.1', details: { i: 0 }, attributes: {} })
  })

  it('rotates by size: closed files under final names, every row once', async () => {
    const { dir, exporter } = exporterIn({ rotate_bytes: 4096 })
    await exporter.start()
    const all: Activity[] = []
    for (let i = 0; i < 20; i++) {
      const batch = activities(10)
      all.push(...batch)
      expect((await exporter.export(batch)).status).toBe('success')
    }
    // Files close once they pass the size, before the next batch: all but the open one are final.
    expect(finals(dir).length).toBeGreaterThan(3)
    expect(temps(dir)).toHaveLength(1)
    await exporter.shutdown()
    expect(idsIn(dir)).toEqual(all.map((a) => a.id))
  })

  it('rotates by time, with no batch coming', async () => {
    const { dir, exporter } = exporterIn({ rotate_interval_ms: 1000 })
    await exporter.start()
    await exporter.export(activities(5))
    expect(finals(dir)).toEqual([])
    await eventually('the quiet file closed on time', async () => finals(dir).length === 1, 5_000)
    expect(temps(dir)).toEqual([])
    await exporter.shutdown()
    expect(idsIn(dir)).toHaveLength(5)
  })

  it('with gzip, writes .ndjson.gz whose members gunzip as one stream', async () => {
    const { dir, exporter } = exporterIn({ gzip: true })
    await exporter.start()
    const a = activities(50)
    const b = activities(50)
    await exporter.export(a)
    await exporter.export(b)
    await exporter.shutdown()
    const [name] = finals(dir)
    expect(name).toMatch(/\.ndjson\.gz$/)
    expect(idsIn(dir)).toEqual([...a, ...b].map((x) => x.id))
  })

  it('after a crash, writes a batch sent again once, cuts a half-written batch off, and finishes the open file', async () => {
    const { dir, config, exporter } = exporterIn()
    await exporter.start()
    const first = activities(10)
    const second = activities(10)
    await exporter.export(first)
    await exporter.export(second)
    // A crash (no shutdown) right after the second batch, and half of a third written when it came.
    const [tmp] = temps(dir)
    // Longer than what comes after it, so only cutting it off gets rid of it.
    appendFileSync(join(dir, tmp!), `{"id":"half a line ${'x'.repeat(20_000)}`)
    const restarted = createFileExporter(config, logger)
    await restarted.start()
    // The batch processor sends the batch in flight again: the second one.
    expect(await restarted.export(second)).toEqual({ status: 'success' })
    const third = activities(10)
    await restarted.export(third)
    await restarted.shutdown()
    expect(temps(dir)).toEqual([])
    expect(idsIn(dir)).toEqual([...first, ...second, ...third].map((a) => a.id))
  })

  it('drops a .tmp file the state never named (opened, nothing acknowledged in it)', async () => {
    const { dir, config } = exporterIn()
    const exporter = createFileExporter(config, logger)
    await exporter.start()
    await exporter.shutdown()
    appendFileSync(join(dir, 'activities-20260101T000000.000Z-9999.ndjson.tmp'), '{"id":"never acknowledged"}\n')
    const again = createFileExporter(config, logger)
    await again.start()
    expect(temps(dir)).toEqual([])
    await again.shutdown()
    expect(finals(dir)).toEqual([])
  })

  it('refuses a directory another live process writes, and takes over one a dead process left', async () => {
    const { dir, config } = exporterIn()
    const other = spawn('sleep', ['30'])
    try {
      writeFileSync(join(dir, '.file-export.pid'), `${other.pid}\n`)
      await expect(createFileExporter(config, logger).start()).rejects.toThrow(`is written by another actline process (pid ${other.pid})`)
    } finally {
      other.kill('SIGKILL')
    }
    await new Promise((resolve) => other.once('exit', resolve))
    const exporter = createFileExporter(config, logger)
    await exporter.start()
    expect(readFileSync(join(dir, '.file-export.pid'), 'utf8').trim()).toBe(String(process.pid))
    await exporter.shutdown()
  })
})
