/**
 * A Prometheus histogram: counts of observations at or under each bucket's
 * upper bound, their sum and count. Observing is a short scan of a few
 * bounds, cheap enough for every request and every export.
 */
export interface Histogram {
  /** Upper bounds, ascending; +Inf is implied. */
  readonly bounds: readonly number[]
  observe(value: number): void
  /** Cumulative counts per bound, then the +Inf bucket (= count). */
  cumulative(): number[]
  readonly sum: number
  readonly count: number
}

/** Seconds, from 1 ms to 30 s: request and export latencies of a collector. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const

export function createHistogram(bounds: readonly number[] = LATENCY_BUCKETS): Histogram {
  const counts = new Array<number>(bounds.length + 1).fill(0)
  let sum = 0
  let count = 0
  return {
    bounds,
    observe(value) {
      let i = 0
      while (i < bounds.length && value > bounds[i]!) i++
      counts[i]!++
      sum += value
      count++
    },
    cumulative() {
      let running = 0
      return counts.map((n) => (running += n))
    },
    get sum() {
      return sum
    },
    get count() {
      return count
    },
  }
}
