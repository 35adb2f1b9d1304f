/**
 * The one backoff of the code base, for every retry loop: the collector's
 * exporters and store starts, and the app-side activity client. Exponential
 * with full jitter (AWS' "Exponential Backoff And Jitter"): a random delay in
 * [0, min(cap, base * multiplier^n)] spreads out a herd of senders that all
 * saw the same failure at once.
 *
 * lib/ holds what every layer may use and that depends on nothing of ours
 * (Vector's lib/): the app-side client must not load the collector to share it.
 */
export interface Backoff {
  /** First delay's ceiling. */
  initial_interval_ms: number
  /** The ceiling never grows past this. */
  max_interval_ms: number
  /** Growth of the ceiling per attempt. */
  multiplier: number
}

/** Full-jitter delay for attempt n (0-based), in whole milliseconds. */
export function backoffDelay(config: Backoff, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(config.max_interval_ms, config.initial_interval_ms * config.multiplier ** attempt)
  return Math.floor(random() * ceiling)
}

/** A server's Retry-After, in seconds or as an HTTP date, as milliseconds; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined
  const seconds = Number(header)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}
