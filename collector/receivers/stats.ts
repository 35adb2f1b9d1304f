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
  cdc?: { slot: string; state(): { connected: boolean; transactions: number; changes: number; refused: number; lag_bytes: number | null } }
}

export function createReceiverStats(): ReceiverStats {
  return { accepted: 0, rejected: 0, refusedRequests: 0, duplicates: 0, spans: { mapped: 0, unmapped: 0, invalid: 0 } }
}

