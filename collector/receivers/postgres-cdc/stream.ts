/**
 * The replication stream: a publication for the configured tables and a
 * logical slot with the built-in pgoutput plugin, read through
 * pg-logical-replication (a maintained client on `pg`, the driver the
 * collector already uses; its flow control pauses the socket while a
 * message is handled, which is the backpressure the log needs).
 *
 * The slot's confirmed position moves only past a transaction whose
 * activities are durable in the write-ahead log: acknowledgements are ours
 * alone (the client's automatic ones, and its timer confirming the last
 * position *received*, are off). A crash, a lost connection or a restart of
 * PostgreSQL resumes at the last confirmed commit; what is sent again has the
 * same ids (changes.ts) and is dropped as a retry.
 */
import pg from 'pg'
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication'
import { parseActivity, type Activity } from '../../../schemas/activity.ts'
import type { Ingest, Logger } from '../../../schemas/component.ts'
import { redactor } from '../../../schemas/redaction.ts'
import { backoffDelay } from '../../../lib/backoff.ts'
import { redactUrl } from '../../../lib/redact.ts'
import { sleep } from '../../../lib/sleep.ts'
import type { ReceiverStats } from '../stats.ts'
import { CONTEXT_PREFIX, parseContext, toActivities, type Change, type Origin, type Transaction } from './changes.ts'
import type { PostgresCdcReceiverConfig } from './config.ts'
import { describeTables, prepare, primaryKeysOf as keysOf, CdcSetupError } from './setup.ts'

const RETRY = { initial_interval_ms: 500, max_interval_ms: 30_000, multiplier: 2 }

export interface CdcState {
  connected: boolean
  /** The last commit whose activities are durable, as confirmed to the slot. */
  confirmed_lsn: string | null
  transactions: number
  changes: number
  /** Changes that could not be made an activity even without their values (logged with their LSN). */
  refused: number
  last_error: string | null
  /** WAL the server retains for the slot, read every LAG_POLL_MS; null until read. */
  lag_bytes: number | null
}

const LAG_POLL_MS = 10_000

export interface CdcStream {
  /** Prepares the server: a one-line CdcSetupError for what must be changed there; a server not reachable is retried by run(). */
  prepare(): Promise<void>
  /** Reads the stream in the background, from the slot's confirmed position: once the log is open. */
  run(): void
  stop(): Promise<void>
  state(): CdcState
}

/**
 * A standby status update confirming exactly `lsn` as written, flushed and
 * applied. The client's own acknowledge() sends lsn + 1, and a server shutting
 * down waits until the confirmed position *equals* the last it sent: it would
 * wait for ever (pg_recvlogical confirms exact positions too).
 */
function confirm(s: LogicalReplicationService, lsn: string): void {
  const [hi, lo] = lsn.split('/').map((h) => parseInt(h, 16)) as [number, number]
  const b = Buffer.alloc(34)
  b[0] = 0x72 // 'r'
  for (const at of [1, 9, 17]) {
    b.writeUInt32BE(hi, at)
    b.writeUInt32BE(lo, at + 4)
  }
  b.writeBigUInt64BE(BigInt(Date.now() - 946_684_800_000) * 1000n, 25) // microseconds since 2000-01-01
  ;(s as unknown as { _connection?: { sendCopyFromChunk(b: Buffer): void } })._connection?.sendCopyFromChunk(b)
}

export function createCdcStream(config: PostgresCdcReceiverConfig, ingest: Ingest, stats: ReceiverStats, logger: Logger): CdcStream {
  const url = config.url!
  const redacted = redactor(config.redact)
  const state: CdcState = { connected: false, confirmed_lsn: null, transactions: 0, changes: 0, refused: 0, last_error: null, lag_bytes: null }
  let lagTimer: NodeJS.Timeout | undefined
  let stopped = false
  let service: LogicalReplicationService | undefined
  let loop: Promise<void> | undefined
  const stopping = new AbortController()

  /** Durable in the log, waiting out a full log or a failed disk: a change is never skipped to keep going. */
  async function durable(inputs: ReturnType<typeof toActivities>): Promise<void> {
    const receivedAt = Date.now()
    const activities: Activity[] = []
    for (const input of inputs) {
      let r = parseActivity(input, receivedAt)
      // A value no store can hold (over a limit): the change is kept, without its values, saying why.
      if (!r.ok) r = parseActivity({ ...input, details: undefined, attributes: { ...input.attributes, 'cdc.values_dropped': r.issues.map((i) => `${i.path}: ${i.message}`).join('; ').slice(0, 500) } }, receivedAt)
      if (r.ok) activities.push(r.activity)
      else {
        state.refused++
        logger.error({ commit_lsn: input.attributes?.['db.commit_lsn'], issues: r.issues }, 'postgres_cdc: a row change could not be made an activity')
      }
    }
    for (let attempt = 0; ; attempt++) {
      if (stopped) throw new Error('stopped')
      if (!ingest.refusal()) {
        try {
          await ingest.write(activities)
          stats.accepted += activities.length
          return
        } catch (err) {
          logger.debug({ err }, 'postgres_cdc: write-ahead log append failed; retrying')
        }
      }
      await sleep(backoffDelay(RETRY, Math.min(attempt, 6)), stopping.signal)
    }
  }

  async function run(origin: Origin): Promise<void> {
    for (let attempt = 0; !stopped; attempt++) {
      let txn: Transaction | undefined
      let written = 0
      const s = new LogicalReplicationService(
        { connectionString: url, application_name: 'actline cdc' },
        { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
      )
      service = s
      // Nothing received and not yet durable: no open transaction, none being handled (the client's
      // flag stays up until its queue is empty), none queued.
      const idle = () => {
        const inner = s as unknown as { _messageQueue: unknown[]; _processing: boolean }
        return !txn && !inner._processing && inner._messageQueue.length === 0
      }
      s.on('error', (err: Error) => {
        state.last_error = err.message
        if (!stopped) logger.warn({ err: err.message, slot: config.slot }, 'postgres_cdc: replication error')
      })
      s.on('start', () => {
        state.connected = true
        attempt = 0
        void pollLag()
        logger.info({ slot: config.slot, publication: config.publication, url: redactUrl(url) }, 'postgres_cdc: streaming row changes')
      })
      // The server asks for a reply when it has sent nothing for a while. With nothing
      // of ours in flight, everything up to its position is handled: confirming it lets
      // the slot release WAL written for other tables.
      s.on('heartbeat', (lsn: string, _at: number, reply: boolean) => {
        if (reply) confirm(s, idle() ? lsn : (state.confirmed_lsn ?? '0/0'))
      })
      let failed = false
      s.on('data', async (lsn: string, msg: { tag: string } & Record<string, any>) => {
        if (failed) return
        try {
          await handle(msg)
        } catch (err) {
          // Never past a change not stored: the stream is closed here, and the next one starts at the last confirmed commit.
          failed = true
          state.last_error = (err as Error).message
          if (!stopped) logger.error({ err: (err as Error).message, lsn, slot: config.slot }, 'postgres_cdc: a change could not be handled; re-reading from the last confirmed commit')
          void s.stop()
        }
      })
      const handle = async (msg: { tag: string } & Record<string, any>) => {
        if (msg.tag === 'relation') {
          // A table the publication took in since the start (schema.*): its key, read once.
          const name = `${msg.schema}.${msg.name}`
          if (!origin.primaryKeys.has(name)) for (const [t, cols] of await primaryKeysOf(name)) origin.primaryKeys.set(t, cols)
        } else if (msg.tag === 'begin') {
          txn = { xid: msg.xid, commitLsn: msg.commitLsn, commitTime: msg.commitTime, changes: [] }
          written = 0
        } else if (msg.tag === 'insert' || msg.tag === 'update' || msg.tag === 'delete' || msg.tag === 'truncate') {
          if (!txn) return
          txn.changes.push(msg as unknown as Change)
          // A huge transaction goes to the log in pieces; its position is confirmed at its commit only.
          if (txn.changes.length - written >= config.max_batch) {
            await durable(toActivities(txn, origin, redacted, written))
            written = txn.changes.length
          }
        } else if (msg.tag === 'message') {
          // Who did it, from the app, inside the transaction (so it commits, or not, with the changes).
          if (txn && msg.transactional && msg.prefix === CONTEXT_PREFIX) {
            const context = parseContext(msg.content)
            // The app's message and the session_context trigger's add up: who asked, and which login wrote.
            if (context) txn.context = { ...txn.context, ...context }
            else logger.warn({ xid: txn.xid, slot: config.slot }, "postgres_cdc: an 'actline' message that is no JSON object of actor_id, tenant_id, trace_id, span_id, correlation_id, db_role, application_name: ignored")
          }
        } else if (msg.tag === 'commit' && txn) {
          const done = txn
          txn = undefined
          if (done.changes.length > written) await durable(toActivities(done, origin, redacted, written))
          state.transactions++
          state.changes += done.changes.length
          state.confirmed_lsn = msg.commitEndLsn
          confirm(s, msg.commitEndLsn)
        }
      }
      try {
        await s.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [config.publication], messages: true }), config.slot)
      } catch (err) {
        if (!stopped) {
          state.last_error = (err as Error).message
          logger.warn({ err: (err as Error).message, slot: config.slot }, 'postgres_cdc: the replication stream ended; reconnecting')
        }
      }
      state.connected = false
      await s.stop().catch(() => {})
      if (!stopped) await sleep(backoffDelay(RETRY, Math.min(attempt, 6)), stopping.signal)
    }
  }

  async function primaryKeysOf(table: string): Promise<Map<string, string[]>> {
    const client = new pg.Client({ connectionString: url, application_name: 'actline cdc', connectionTimeoutMillis: 5_000 })
    try {
      await client.connect()
      return keysOf(await describeTables(client, [table]))
    } catch (err) {
      logger.warn({ err: (err as Error).message, table }, 'postgres_cdc: cannot read the primary key of a new table; its changes carry the replica identity key')
      return new Map()
    } finally {
      await client.end().catch(() => {})
    }
  }

  async function pollLag(): Promise<void> {
    const client = new pg.Client({ connectionString: url, application_name: 'actline cdc', connectionTimeoutMillis: 5_000 })
    try {
      await client.connect()
      const { rows } = await client.query(`SELECT greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::float8 AS lag FROM pg_replication_slots WHERE slot_name = $1`, [config.slot])
      state.lag_bytes = rows[0]?.lag ?? null
    } catch (err) {
      // The stream reports an outage; the last figure stays until the next read.
      logger.debug({ err: (err as Error).message }, 'postgres_cdc: cannot read the slot lag')
    } finally {
      await client.end().catch(() => {})
    }
  }

  let origin: Origin | undefined
  return {
    async prepare() {
      try {
        origin = await prepare(config)
      } catch (err) {
        if (err instanceof CdcSetupError) throw err
        // Not reachable yet: the collector starts anyway and keeps trying, as it does for a store.
        state.last_error = (err as Error).message
        logger.warn({ err: (err as Error).message, url: redactUrl(url) }, 'postgres_cdc: cannot reach the database yet; retrying in the background')
      }
    },
    run() {
      loop = (async () => {
        for (let attempt = 0; !origin && !stopped; attempt++) {
          await sleep(backoffDelay(RETRY, Math.min(attempt, 6)), stopping.signal)
          if (stopped) return
          try {
            origin = await prepare(config)
          } catch (err) {
            state.last_error = (err as Error).message
            if (err instanceof CdcSetupError) logger.error({ err: err.message }, 'postgres_cdc: cannot capture changes')
          }
        }
        if (!origin) return
        lagTimer = setInterval(() => void pollLag(), LAG_POLL_MS).unref()
        await run(origin)
      })()
    },
    async stop() {
      stopped = true
      clearInterval(lagTimer)
      stopping.abort()
      await service?.stop().catch(() => {})
      await loop?.catch(() => {})
    },
    state: () => ({ ...state }),
  }
}
