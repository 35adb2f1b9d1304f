import { afterEach, describe, expect, it } from 'vitest'
import { parseActivity, type Activity } from '../../schemas/activity.ts'
import type { Exporter, ExportResult } from '../../schemas/component.ts'
import { batchConfig, BatchSettings, createBatchProcessor } from '../../collector/pipeline/batch-processor.ts'
import { createDeadLetter } from '../../collector/pipeline/dead-letter.ts'
import { createWriteAheadLog, WriteAheadLogConfig, type WriteAheadLog } from '../../collector/wal/write-ahead-log.ts'
import { createLogger } from '../../collector/server/logger.ts'
import { readLedgerFile } from '../../collector/wal/cursor-ledger.ts'
import { eventually, tempDir } from '../helpers/stores.ts'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const logger = createLogger('silent')
const cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

function activities(n: number, prefix = 'a'): Activity[] {
  return Array.from({ length: n }, (_, i) => {
    const r = parseActivity({ action: `${prefix}.n${i}`, source: i % 2 ? 'user' : 'system' })
    if (!r.ok) throw new Error('bad fixture')
    return r.activity
  })
}

/** Batching is what is under test here; this exporter records what it is handed, or answers as scripted. */
function recordingExporter(answer: (batch: readonly Activity[]) => ExportResult = () => ({ status: 'success' })) {
  const batches: Activity[][] = []
  const exporter: Exporter & { batches: Activity[][] } = {
    name: 'recording',
    batches,
    async start() {},
    async shutdown() {},
    async ping() { return { ok: true } },
    async export(batch) {
      batches.push([...batch])
      return answer(batch)
    },
  }
  return exporter
}

async function setup(batch: Record<string, unknown>, exporter = recordingExporter(), accepts?: (a: Activity) => boolean, dir = tempDir()) {
  const wal = createWriteAheadLog({ ...WriteAheadLogConfig.parse({}), dir: dir.path }, logger)
  await wal.open()
  const processor = createBatchProcessor({
    config: batchConfig(BatchSettings.parse(batch)),
    wal,
    // What the retry wrapper adds, without its retrying: batching is under test.
    exporter: Object.assign(exporter, { health: { retries: 0 }, abort: (exporter as { abort?: () => void }).abort ?? (() => {}) }),
    ...(accepts && { accepts }),
    deadLetter: createDeadLetter(join(dir.path, 'dead'), exporter.name),
    logger,
  })
  await processor.start()
  cleanup.push(() => dir.remove(), () => wal.close(), () => processor.shutdown(Date.now()))
  return { wal, processor, exporter, dir }
}

describe('batch processor over the write-ahead log', () => {
  it('sends a full batch as soon as send_batch_size rows are in the log', async () => {
    const { wal, exporter } = await setup({ send_batch_size: 100, timeout_ms: 60_000 })
    await wal.append(activities(60))
    await wal.append(activities(60))
    await eventually('a batch', async () => exporter.batches.length === 1)
    expect(exporter.batches[0]).toHaveLength(120) // whole records: 60 + 60
  })

  it('sends a batch once send_batch_max_bytes of records are in the log, whole records, however few the rows', async () => {
    const { wal, exporter } = await setup({ send_batch_size: 100_000, send_batch_max_bytes: 4096, timeout_ms: 60_000 })
    // Large events: ~1.5 KB each, so 4 KB is three of them.
    const big = activities(9).map((a) => ({ ...a, details: { blob: 'x'.repeat(1500) } }))
    for (const a of big) await wal.append([a])
    await eventually('batches by bytes', async () => exporter.batches.flat().length === 9)
    expect(exporter.batches.map((b) => b.length)).toEqual([3, 3, 3])
    expect(exporter.batches.flat().map((a) => a.id)).toEqual(big.map((a) => a.id))
  })

  it('sends a partial batch once its oldest row is timeout_ms old', async () => {
    const { wal, exporter } = await setup({ send_batch_size: 1000, timeout_ms: 300 })
    const started = Date.now()
    await wal.append(activities(3))
    await eventually('a partial batch', async () => exporter.batches.length === 1)
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    expect(exporter.batches[0]).toHaveLength(3)
  })

  it('sends a partial batch on time even after heavy allocation (no GC-able timeout signal)', async () => {
    // The wait once used AbortSignal.timeout inside AbortSignal.any, which
    // Node may collect before it fires: the partial batch then waited for
    // the next append. Force collections while it waits.
    const { wal, exporter } = await setup({ send_batch_size: 1000, timeout_ms: 200 })
    await wal.append(activities(3))
    for (let i = 0; i < 20; i++) {
      Array.from({ length: 50_000 }, (_, j) => ({ j, s: `x${j}` }))
      ;(globalThis as { gc?: () => void }).gc?.()
      await new Promise((r) => setTimeout(r, 10))
    }
    await eventually('the partial batch', async () => exporter.batches.length === 1, 2_000)
  })

  it('keeps rows in log order across batches and only passes the rows its route accepts', async () => {
    const { wal, exporter } = await setup({ send_batch_size: 4, timeout_ms: 50 }, recordingExporter(), (a) => a.source === 'user')
    const sent = [...activities(4, 'x'), ...activities(4, 'y')]
    await wal.append(sent.slice(0, 4))
    await wal.append(sent.slice(4))
    await eventually('all user rows', async () => exporter.batches.flat().length === 4)
    expect(exporter.batches.flat().map((a) => a.id)).toEqual(sent.filter((a) => a.source === 'user').map((a) => a.id))
  })

  /** A first run whose export never comes back, stopped: the batch of `rows` is left in flight in `dir`. */
  async function leaveInFlight(dir: ReturnType<typeof tempDir>, rows: Activity[]): Promise<void> {
    let calls = 0
    // The first attempt never comes back (the process "dies" mid-export).
    let abandon: (() => void) | undefined
    const hanging = Object.assign(recordingExporter(), {
      // As the retry wrapper does at shutdown: give up, report retryable.
      abort: () => abandon?.(),
    })
    hanging.export = async (batch) => {
      hanging.batches.push([...batch])
      calls++
      return new Promise<ExportResult>((resolve) => (abandon = () => resolve({ status: 'retryable', error: new Error('gone') })))
    }
    const first = await setup({ send_batch_size: 5, timeout_ms: 20 }, hanging, undefined, dir)
    await first.wal.append(rows)
    await eventually('first attempt', async () => calls === 1)
    const cursorFile = (await readLedgerFile(dir.path, 'recording'))!
    expect(cursorFile.inflight).toEqual({ start: 0, end: first.wal.end })
    await first.processor.shutdown(Date.now())
    await first.wal.close()
  }

  it('resumes from its cursor after a restart and sends an in-flight range again as the same rows', async () => {
    const dir = tempDir()
    const rows = activities(5)
    await leaveInFlight(dir, rows)

    // "Restart": a new log and processor on the same directory.
    const again = recordingExporter()
    const second = await setup({ send_batch_size: 5, timeout_ms: 20 }, again, undefined, dir)
    await eventually('replayed batch', async () => again.batches.length === 1)
    expect(again.batches[0]!.map((a) => a.id)).toEqual(rows.map((a) => a.id))
    await eventually('cursor committed', async () => (await readLedgerFile(dir.path, 'recording'))!.inflight === undefined)
    expect(second.processor.pending).toBe(0)
  })

  it('asks a store that can say which rows it holds, until it answers, and resends only the rest of the range in flight, as a resend of its own', async () => {
    const dir = tempDir()
    const rows = activities(5)
    await leaveInFlight(dir, rows)

    // Down at the restart for two asks, then holding the first two rows.
    let asks = 0
    const attempts: (string | undefined)[] = []
    const again = Object.assign(recordingExporter(), {
      async stored(ids: readonly string[]) {
        if (++asks <= 2) throw new Error('connect ECONNREFUSED 127.0.0.1:8123')
        return new Set(ids.slice(0, 2))
      },
    })
    const record = again.export
    again.export = async (batch, attempt) => {
      attempts.push(attempt?.resend)
      return record(batch, attempt)
    }
    const second = await setup({ send_batch_size: 5, timeout_ms: 20 }, again, undefined, dir)
    await eventually('replayed batch', async () => again.batches.length === 1, 10_000)
    expect(asks).toBe(3)
    expect(again.batches[0]!.map((a) => a.id)).toEqual(rows.slice(2).map((a) => a.id))
    expect(attempts[0]).toMatch(/^[0-9a-f-]{36}$/)
    await eventually('cursor committed', async () => (await readLedgerFile(dir.path, 'recording'))!.inflight === undefined)
    expect(second.processor.pending).toBe(0)

    // New rows after it are a first sending, not a resend.
    await second.wal.append(activities(5, 'b'))
    await eventually('the next batch', async () => again.batches.length === 2)
    expect(attempts[1]).toBeUndefined()
  })

  it('isolates rows a store refuses for good into the dead-letter file and sends the rest', async () => {
    const rows = activities(8)
    const bad = new Set([rows[2]!.id, rows[6]!.id])
    const exporter = recordingExporter((batch) =>
      batch.some((a) => bad.has(a.id)) ? { status: 'permanent', error: new Error('CANNOT_PARSE_INPUT') } : { status: 'success' },
    )
    const { wal, processor, dir } = await setup({ send_batch_size: 8, timeout_ms: 20 }, exporter)
    await wal.append(rows)
    await eventually('caught up', async () => processor.pending === 0 && processor.stats.exported === 6)
    expect(processor.stats.rejected).toBe(2)
    const dead = readFileSync(join(dir.path, 'dead', 'recording.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(dead.map((d) => d.activity.id).sort()).toEqual([...bad].sort())
    expect(dead[0].reason).toBe('CANNOT_PARSE_INPUT')
  })

  it('on shutdown exports what the log holds, then stops', async () => {
    const { wal, processor, exporter } = await setup({ send_batch_size: 1000, timeout_ms: 60_000 })
    await wal.append(activities(7))
    await processor.shutdown()
    expect(exporter.batches.map((b) => b.length)).toEqual([7])
    expect(processor.pending).toBe(0)
  })
})
