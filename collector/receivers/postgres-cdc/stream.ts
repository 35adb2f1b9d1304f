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
import { join } from 'node:path'
import pg from 'pg'
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication'
import { parseActivity, type Activity } from '../../../schemas/activity.ts'
import type { Ingest, Logger } from '../../../schemas/component.ts'
import { redactor } from '../../../schemas/redaction.ts'
import { backoffDelay } from '../../../lib/backoff.ts'
import { redactUrl } from '../../../lib/redact.ts'
import { sleep } from '../../../lib/sleep.ts'
import type { ReceiverStats } from '../stats.ts'
import { CONTEXT_PREFIX, parseContext, parseSession, SESSION_PREFIX, toActivities, type Change, type Origin, type Transaction } from './changes.ts'
import type { PostgresCdcReceiverConfig } from './config.ts'
import { prepare, publications, reconcile, CdcSetupError, type CaptureReport } from './setup.ts'
import { quoteQualified } from '../../../lib/sql.ts'
import { createProgress } from './progress.ts'
import { columnReader, STREAM_SESSION } from './values.ts'
import { pgClient } from '../../../lib/pg-client.ts'

const RETRY = { initial_interval_ms: 500, max_interval_ms: 30_000, multiplier: 2 }

export interface CdcState {
  connected: boolean
  /** The last commit whose activities are durable, as confirmed to the slot. */
  confirmed_lsn: string | null
  transactions: number
  changes: number
  /** Changes stored without their values: with them the activity was more than a store holds (cdc.values_dropped says why). */
  values_dropped: number
  /** Context messages ignored: malformed, hostile, or a session message without the trigger's token. */
  context_ignored: number
  /** Why the stream is stopped at a change it cannot store (retried, never skipped); null while it flows. */
  blocked: string | null
  last_error: string | null
  /** WAL the server retains for the slot, read every LAG_POLL_MS; null until read. */
  lag_bytes: number | null
}

const LAG_POLL_MS = 10_000

/** A change that cannot be made an activity a store holds, even without its values: the stream waits at it. */
class CdcBlocked extends Error {}

const issuesOf = (r: { issues: readonly { path: string; message: string }[] }) => r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')

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

export function createCdcStream(config: PostgresCdcReceiverConfig, ingest: Ingest, stats: ReceiverStats, logger: Logger, stateDir: string): CdcStream {
  const progress = createProgress(join(stateDir, `postgres-cdc-${config.slot}.json`))
  const url = config.url!
  const redacted = redactor(config.redact)
  const state: CdcState = { connected: false, confirmed_lsn: null, transactions: 0, changes: 0, values_dropped: 0, context_ignored: 0, blocked: null, last_error: null, lag_bytes: null }
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
      if (!r.ok) {
        // Values are made storable (values.ts); what is left over a limit is kept without them, saying why.
        const { details: _, ...change } = input
        const why = issuesOf(r).slice(0, 500)
        r = parseActivity({ ...change, attributes: { ...change.attributes, 'cdc.values_dropped': why } }, receivedAt)
        if (!r.ok) {
          // Never past a change not stored: the stream stops here and starts again from the last confirmed commit.
          const at = `${input.attributes?.['db.commit_lsn']} change ${input.attributes?.['db.change_index']}`
          throw new CdcBlocked(`cannot store the change at commit ${at} (${input.action} on ${input.entity_type}): ${issuesOf(r).slice(0, 300)}`)
        }
        state.values_dropped++
        logger.warn({ commit_lsn: input.attributes?.['db.commit_lsn'], change_index: input.attributes?.['db.change_index'], why }, 'postgres_cdc: a row change is stored without its values, which are more than a store holds')
      }
      activities.push(r.activity)
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

  /** The changes held, durable in the log; a piece of a transaction not yet committed is remembered as written (progress.ts). */
  async function writePiece(txn: Transaction, last: boolean): Promise<void> {
    await durable(toActivities(txn, origin!, redacted))
    txn.offset += txn.changes.length
    txn.changes = []
    if (!last) await progress.save({ commit_lsn: `${origin!.systemId}/${txn.commitLsn}`, written: txn.offset })
  }

  /** The app's context and the trigger's add up: who asked, and which login wrote. A hostile message is ignored, and counted. */
  function context(txn: Transaction, prefix: string, content: Uint8Array): void {
    if (prefix !== CONTEXT_PREFIX && prefix !== SESSION_PREFIX) return
    const parsed = prefix === CONTEXT_PREFIX ? parseContext(content) : parseSession(content, origin!.sessionToken)
    if (parsed) {
      txn.context = { ...txn.context, ...parsed }
      return
    }
    state.context_ignored++
    logger.warn(
      { xid: txn.xid, prefix, bytes: content.length, slot: config.slot },
      prefix === CONTEXT_PREFIX
        ? "postgres_cdc: an 'actline' message that is no JSON object of actor_id, tenant_id, trace_id, span_id, correlation_id (valid strings of their format, 4 KiB at most): ignored, and the transaction's changes stored without it"
        : "postgres_cdc: an 'actline_session' message not sent by the session_context trigger: ignored",
    )
  }

  /** pgoutput with values read from PostgreSQL's text by values.ts rather than pg's type parsers. */
  function plugin(): PgoutputPlugin {
    const p = new PgoutputPlugin({ protoVersion: 1, publicationNames: publications(config), messages: true })
    const parser = (p as unknown as { parser: { readRelationColumn(reader: unknown): { typeOid: number; typeName?: string | null; parser: unknown } } }).parser
    const read = parser.readRelationColumn.bind(parser)
    parser.readRelationColumn = (reader) => {
      const column = read(reader)
      return { ...column, parser: columnReader(column, config.max_value_bytes) }
    }
    return p
  }

  async function run(origin: Origin): Promise<void> {
    for (let attempt = 0; !stopped; attempt++) {
      let txn: Transaction | undefined
      let skip = 0
      const s = new LogicalReplicationService(
        { connectionString: url, application_name: 'actline cdc', options: STREAM_SESSION },
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
        // Waiting at a change it cannot store: the backoff keeps growing rather than re-reading it twice a second.
        if (!state.blocked) attempt = 0
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
          if (err instanceof CdcBlocked) state.blocked = err.message
          if (!stopped) logger.error({ err: (err as Error).message, lsn, slot: config.slot }, 'postgres_cdc: a change could not be handled; re-reading from the last confirmed commit')
          void s.stop()
        }
      })
      const handle = async (msg: { tag: string } & Record<string, any>) => {
        // A table's key comes from reconcile(), which publishes it: no relation message names a table it has not read.
        if (msg.tag === 'begin') {
          txn = { xid: msg.xid, commitLsn: msg.commitLsn, commitTime: msg.commitTime, changes: [], offset: 0 }
          // Read again after a crash in its middle: what its pieces put in the log is not written twice.
          skip = progress.writtenOf(`${origin!.systemId}/${msg.commitLsn}`)
        } else if (msg.tag === 'insert' || msg.tag === 'update' || msg.tag === 'delete' || msg.tag === 'truncate') {
          if (!txn) return
          if (skip > 0) {
            skip--
            txn.offset++
            return
          }
          txn.changes.push(msg as unknown as Change)
          // A huge transaction goes to the log in pieces and is not held whole; its position is confirmed at its commit only.
          if (txn.changes.length >= config.max_batch) await writePiece(txn, false)
        } else if (msg.tag === 'message') {
          // Who did it, inside the transaction (so it commits, or not, with the changes).
          if (txn && msg.transactional) context(txn, msg.prefix, msg.content)
        } else if (msg.tag === 'commit' && txn) {
          const done = txn
          txn = undefined
          if (done.changes.length > 0) await writePiece(done, true)
          state.transactions++
          state.changes += done.offset
          state.confirmed_lsn = msg.commitEndLsn
          state.blocked = null
          confirm(s, msg.commitEndLsn)
        }
      }
      try {
        await s.subscribe(plugin(), config.slot)
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

  /** A short-lived connection for the periodic reads beside the stream; a failure is `failed`'s to report, and the next period tries again. */
  async function withClient(work: (client: pg.Client) => Promise<void>, failed: (err: Error) => void): Promise<void> {
    const client = pgClient({ connectionString: url, application_name: 'actline cdc', connectionTimeoutMillis: 5_000 })
    try {
      await client.connect()
      await work(client)
    } catch (err) {
      failed(err as Error)
    } finally {
      await client.end().catch(() => {})
    }
  }

  const pollLag = () =>
    withClient(
      async (client) => {
        const { rows } = await client.query(`SELECT greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::float8 AS lag FROM pg_replication_slots WHERE slot_name = $1`, [config.slot])
        state.lag_bytes = rows[0]?.lag ?? null
      },
      // The stream reports an outage; the last figure stays until the next read.
      (err) => logger.debug({ err: err.message }, 'postgres_cdc: cannot read the slot lag'),
    )

  let origin: Origin | undefined
  let reconcileTimer: NodeJS.Timeout | undefined
  const reported = new Set<string>()

  /** The start log, and each change a reconcile finds after: what is captured, what only partly, what not and what to run. */
  function report(r: CaptureReport): void {
    const once = (key: string, log: () => void) => {
      if (!reported.has(key)) log()
      reported.add(key)
    }
    once(`tables ${r.keyed.join(',')} ${r.insertOnly.join(',')}`, () => logger.info({ tables: r.keyed, insert_only: r.insertOnly, slot: config.slot }, 'postgres_cdc: capturing tables'))
    for (const t of r.insertOnly) {
      once(`keyless ${t}`, () => logger.warn({ table: t }, `postgres_cdc: ${t} has no primary key or replica identity: its inserts are captured, its updates and deletes are not (publishing them would make them fail in the app); to capture them: ALTER TABLE ${quoteQualified(t)} REPLICA IDENTITY FULL, or add a primary key`))
    }
    for (const t of r.missing) once(`missing ${t}`, () => logger.warn({ table: t }, `postgres_cdc: no table ${t} (yet): captured once it exists`))
    for (const f of r.failed) once(`failed ${f.table} ${f.why}`, () => logger.warn({ table: f.table, why: f.why }, `postgres_cdc: cannot capture ${f.table}: ${f.why}`))
    if (r.emitters === null) {
      once('emitters', () => logger.warn({}, "postgres_cdc: any database role may emit 'actline' context messages and claim who made a change: as a superuser, REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) FROM PUBLIC and GRANT it to the app's role (docs/cdc.md, \"Who may say who did it\")"))
    }
    // As the catalog has them now: a key dropped since is dropped here too.
    if (origin) origin.primaryKeys = r.primaryKeys
  }

  async function setUp(): Promise<void> {
    const r = await prepare(config)
    origin = r.origin
    report(r.report)
  }

  /** Tables created since, or whose key changed: a bounded time (reconcile_seconds) until they are captured the safe way. */
  const reconcileTables = () =>
    withClient(
      async (client) => report(await reconcile(client, config)),
      (err) => logger.warn({ err: err.message }, 'postgres_cdc: cannot check the captured tables; trying again later'),
    )

  return {
    async prepare() {
      try {
        await setUp()
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
            await setUp()
          } catch (err) {
            state.last_error = (err as Error).message
            if (err instanceof CdcSetupError) logger.error({ err: err.message }, 'postgres_cdc: cannot capture changes')
          }
        }
        if (!origin) return
        lagTimer = setInterval(() => void pollLag(), LAG_POLL_MS).unref()
        reconcileTimer = setInterval(() => void reconcileTables(), config.reconcile_seconds * 1000).unref()
        await run(origin)
      })()
    },
    async stop() {
      stopped = true
      clearInterval(lagTimer)
      clearInterval(reconcileTimer)
      stopping.abort()
      await service?.stop().catch(() => {})
      await loop?.catch(() => {})
    },
    state: () => ({ ...state }),
  }
}
