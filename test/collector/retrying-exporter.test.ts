import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Exporter, ExportResult } from '../../schemas/component.ts'
import { backoffDelay } from '../../lib/backoff.ts'
import { RetryConfig, withRetry } from '../../collector/pipeline/retry.ts'
import { createLogger } from '../../collector/server/logger.ts'

const logger = createLogger('silent')
const config = RetryConfig.parse({ initial_interval_ms: 100, max_interval_ms: 1_000, multiplier: 2 })

function scripted(results: ExportResult[]) {
  let calls = 0
  const exporter: Exporter & { calls(): number } = {
    name: 'scripted',
    calls: () => calls,
    async start() {},
    async shutdown() {},
    async ping() { return { ok: true } },
    async export() {
      calls++
      return results.shift() ?? { status: 'success' }
    },
  }
  return exporter
}

const retryable = (retryAfterMs?: number): ExportResult => ({ status: 'retryable', error: new Error('ECONNREFUSED'), ...(retryAfterMs && { retryAfterMs }) })

describe('retrying exporter', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('draws full-jitter delays under a ceiling that doubles up to max_interval_ms', () => {
    expect(backoffDelay(config, 0, () => 0.999)).toBe(99)
    expect(backoffDelay(config, 3, () => 0.999)).toBe(799)
    expect(backoffDelay(config, 10, () => 0.999)).toBe(999)
    expect(backoffDelay(config, 10, () => 0)).toBe(0)
  })

  it('retries retryable failures until success', async () => {
    const inner = scripted([retryable(), retryable(), { status: 'success' }])
    const result = withRetry(inner, config, logger).export([])
    await vi.advanceTimersByTimeAsync(5_000)
    expect(await result).toEqual({ status: 'success' })
    expect(inner.calls()).toBe(3)
  })

  it('does not retry a permanent failure', async () => {
    const inner = scripted([{ status: 'permanent', error: new Error('CANNOT_PARSE') }])
    expect((await withRetry(inner, config, logger).export([])).status).toBe('permanent')
    expect(inner.calls()).toBe(1)
  })

  it('honours a store-supplied retry delay', async () => {
    const inner = scripted([retryable(3_000)])
    const result = withRetry(inner, config, logger).export([])
    await vi.advanceTimersByTimeAsync(2_999)
    expect(inner.calls()).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    await result
    expect(inner.calls()).toBe(2)
  })

  it('stops waiting when aborted and returns the last failure', async () => {
    const inner = scripted(Array.from({ length: 100 }, () => retryable(60_000)))
    const r = withRetry(inner, config, logger)
    const result = r.export([])
    await vi.advanceTimersByTimeAsync(10)
    r.abort()
    await vi.advanceTimersByTimeAsync(0)
    expect((await result).status).toBe('retryable')
    expect(inner.calls()).toBe(2)
  })

  it('retries an unknown failure for max_elapsed_ms, then answers permanent so the rows can be isolated', async () => {
    const unknown: ExportResult = { status: 'unknown', error: new Error('Code: 395. throwIf') }
    const inner = scripted(Array.from({ length: 1000 }, () => unknown))
    const r = withRetry(inner, RetryConfig.parse({ initial_interval_ms: 100, max_interval_ms: 1_000, max_elapsed_ms: 10_000 }), logger)
    const result = r.export([])
    await vi.advanceTimersByTimeAsync(9_000)
    expect(r.health.failingSince).toBeDefined()
    expect(r.health.lastError).toMatch(/395/)
    await vi.advanceTimersByTimeAsync(3_000)
    const final = await result
    expect(final.status).toBe('permanent')
    expect(inner.calls()).toBeGreaterThan(5)
  })

  it('gives an unknown failure one try when told unknownRetryMs 0 (the halves of a split batch)', async () => {
    const inner = scripted([{ status: 'unknown', error: new Error('odd') }])
    expect((await withRetry(inner, config, logger).export([], { unknownRetryMs: 0 })).status).toBe('permanent')
    expect(inner.calls()).toBe(1)
  })

  it('retries an outage without bound, past max_elapsed_ms, and clears its failing state on success', async () => {
    const inner = scripted([...Array.from({ length: 40 }, () => retryable()), { status: 'success' }])
    const r = withRetry(inner, RetryConfig.parse({ initial_interval_ms: 100, max_interval_ms: 1_000, max_elapsed_ms: 1_000 }), logger)
    const result = r.export([])
    await vi.advanceTimersByTimeAsync(60_000)
    expect(await result).toEqual({ status: 'success' })
    expect(inner.calls()).toBe(41)
    expect(r.health.failingSince).toBeUndefined()
    expect(r.health.retries).toBe(40)
  })
})
