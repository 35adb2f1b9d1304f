import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { parseActivity, type Activity } from '../../schemas/activity.ts'
import type { Exporter, ExportResult } from '../../schemas/component.ts'
import { BatchProcessorConfig, createBatchProcessor } from '../../collector/batch-processor.ts'
import { createLogger } from '../../collector/collector.ts'

const logger = createLogger('silent')

function activities(n: number, prefix = 'a'): Activity[] {
  return Array.from({ length: n }, (_, i) => {
    const r = parseActivity({ action: `${prefix}.n${i}`, source: 'system' })
    if (!r.ok) throw new Error('bad fixture')
    return r.activity
  })
}

/** Batching is what is under test here; this exporter only records what it was handed. */
function recordingExporter(results: ExportResult[] = []) {
  const batches: Activity[][] = []
  let release: (() => void) | undefined
  const exporter: Exporter & { batches: Activity[][]; hold(): void; release(): void } = {
    name: 'recording',
    batches,
    hold() { exporter.export = async (b) => { batches.push([...b]); await new Promise<void>((r) => (release = r)); return { status: 'success' } } },
    release() { release?.() },
    async start() {},
    async shutdown() {},
    async ping() { return { ok: true } },
    async export(batch) {
      batches.push([...batch])
      return results.shift() ?? { status: 'success' }
    },
  }
  return exporter
}

describe('batch processor', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('sends a full batch as soon as send_batch_size rows are queued', async () => {
    const exporter = recordingExporter()
    const p = createBatchProcessor(BatchProcessorConfig.parse({ send_batch_size: 100, timeout_ms: 10_000 }), exporter, logger)
    expect(p.consume(activities(60))).toBe(true)
    expect(p.consume(activities(60))).toBe(true)
    await vi.advanceTimersByTimeAsync(0)
    expect(exporter.batches.map((b) => b.length)).toEqual([100])
    expect(p.pending).toBe(20)
  })

  it('sends a partial batch once its oldest row is timeout_ms old', async () => {
    const exporter = recordingExporter()
    const p = createBatchProcessor(BatchProcessorConfig.parse({ send_batch_size: 100, timeout_ms: 500 }), exporter, logger)
    p.consume(activities(3))
    await vi.advanceTimersByTimeAsync(499)
    expect(exporter.batches).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(1)
    expect(exporter.batches.map((b) => b.length)).toEqual([3])
  })

  it('keeps rows in arrival order across batches', async () => {
    const exporter = recordingExporter()
    const p = createBatchProcessor(BatchProcessorConfig.parse({ send_batch_size: 4, timeout_ms: 100 }), exporter, logger)
    const sent = [...activities(3, 'x'), ...activities(3, 'y'), ...activities(3, 'z')]
    p.consume(sent.slice(0, 3))
    p.consume(sent.slice(3, 6))
    p.consume(sent.slice(6))
    await vi.advanceTimersByTimeAsync(200)
    expect(exporter.batches.map((b) => b.length)).toEqual([4, 4, 1])
    expect(exporter.batches.flat().map((a) => a.id)).toEqual(sent.map((a) => a.id))
  })

  it('refuses a request that does not fit, whole, and counts rows in flight against the bound', async () => {
    const exporter = recordingExporter()
    exporter.hold()
    const p = createBatchProcessor(BatchProcessorConfig.parse({ send_batch_size: 10, timeout_ms: 100, queue_size: 25 }), exporter, logger)
    expect(p.consume(activities(10))).toBe(true) // goes in flight and stays there
    await vi.advanceTimersByTimeAsync(0)
    expect(p.consume(activities(15))).toBe(true)
    expect(p.capacity()).toBe(0)
    expect(p.consume(activities(1))).toBe(false)
    expect(p.pending).toBe(25)
    exporter.release()
    await vi.advanceTimersByTimeAsync(0)
    expect(p.capacity()).toBeGreaterThan(0)
  })

  it('drains everything it holds on shutdown, then refuses more', async () => {
    const exporter = recordingExporter()
    const p = createBatchProcessor(BatchProcessorConfig.parse({ send_batch_size: 100, timeout_ms: 60_000 }), exporter, logger)
    p.consume(activities(7))
    await p.shutdown()
    expect(exporter.batches.map((b) => b.length)).toEqual([7])
    expect(p.consume(activities(1))).toBe(false)
    expect(p.capacity()).toBe(0)
  })

  it('rejects a config whose queue cannot hold one batch, naming the key', () => {
    const r = BatchProcessorConfig.safeParse({ send_batch_size: 500, queue_size: 100 })
    expect(r.success).toBe(false)
    expect(r.error!.issues[0]!.path).toEqual(['queue_size'])
  })
})
