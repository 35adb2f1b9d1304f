/** What the receivers count, for /metrics: one object all receivers of a collector share. */
export interface ReceiverStats {
  accepted: number
  rejected: number
  /** Requests refused (log full or memory limit) before their body was read. */
  refusedRequests: number
  /** Accepted activities not written again: their id was accepted moments before (a client's retry). */
  duplicates: number
  /** OTLP spans: made an activity, were no activity by the mapping rules, or could not be used. */
  spans: { mapped: number; unmapped: number; invalid: number }
  /** Change-data capture, when receivers.postgres_cdc is on: its stream's state, read at each scrape. */
  cdc?: {
    slot: string
    /** Past this lag /readyz warns. */
    warnLagBytes: number
    state(): { connected: boolean; transactions: number; changes: number; values_dropped: number; context_ignored: number; blocked: string | null; lag_bytes: number | null; last_error: string | null }
  }
}

/** What /readyz says about the receivers without refusing traffic: nothing they report stops a sender. */
export function receiverWarnings(stats: ReceiverStats): string[] {
  if (!stats.cdc) return []
  const c = stats.cdc.state()
  const out: string[] = []
  if (c.blocked) out.push(`postgres_cdc: stopped at a change it cannot store, retrying (never skipped): ${c.blocked}`)
  else if (!c.connected) out.push(`postgres_cdc: not streaming slot ${stats.cdc.slot}${c.last_error ? `: ${c.last_error}` : ''}`)
  if (c.lag_bytes !== null && c.lag_bytes > stats.cdc.warnLagBytes) {
    out.push(`postgres_cdc: slot ${stats.cdc.slot} holds ${Math.round(c.lag_bytes / 1024 ** 2)} MiB of WAL on the server (over receivers.postgres_cdc.warn_lag_bytes); see docs/cdc.md`)
  }
  return out
}

export function createReceiverStats(): ReceiverStats {
  return { accepted: 0, rejected: 0, refusedRequests: 0, duplicates: 0, spans: { mapped: 0, unmapped: 0, invalid: 0 } }
}

