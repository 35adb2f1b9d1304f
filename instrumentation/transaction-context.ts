/**
 * Who is writing, told to the database inside the transaction, for
 * change-data capture (receivers.postgres_cdc): a transactional logical
 * decoding message with the current activity context and trace. It commits,
 * or rolls back, with the transaction's changes, and the collector puts its
 * ids on each of them (docs/cdc.md, "Who did it"). It writes no table.
 */
import { activeTraceIds, currentActivityContext } from './activity-context.ts'

/** The message's prefix: the one the collector reads. */
export const TRANSACTION_CONTEXT_PREFIX = 'actline'

/** What the message holds now: the context's ids and the active trace's; undefined when there is nothing to tell. */
export function transactionContext(): Record<string, string> | undefined {
  const c = currentActivityContext()
  const ids = activeTraceIds()
  const out: Record<string, string> = {
    ...(c?.actorId && { actor_id: c.actorId }),
    ...(c?.tenantId && { tenant_id: c.tenantId }),
    ...(c?.correlationId && { correlation_id: c.correlationId }),
    ...(ids && { trace_id: ids.traceId, span_id: ids.spanId }),
  }
  return Object.keys(out).length ? out : undefined
}

/**
 * Tags the open transaction of `client` (a pg Client or PoolClient, after
 * BEGIN, before its writes) with who is writing. Does nothing without a
 * context. Outside a transaction the message would travel alone, with no
 * change: call it after BEGIN.
 */
export async function tagTransaction(client: { query(text: string, values: unknown[]): Promise<unknown> }): Promise<void> {
  const context = transactionContext()
  if (!context) return
  await client.query('SELECT pg_logical_emit_message(true, $1, $2)', [TRANSACTION_CONTEXT_PREFIX, JSON.stringify(context)])
}
