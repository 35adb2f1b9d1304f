/**
 * Worker thread that owns the embedded PostgreSQL (PGlite, WASM). It lives
 * on its own thread because PGlite computes on the thread that owns it: on
 * the main thread every audit insert would stall ingest.
 *
 * It listens on nothing. The exporter's `pg` connection reaches it through
 * a MessagePort the collector hands over (embedded-postgres.ts): no port
 * or socket exists that another process could open, so only the collector
 * can read or write the audit trail, and no second connection can take
 * PGlite's single session from it. The wire protocol is framed here as
 * pglite-socket frames it, and each message runs through PGlite's
 * execProtocolRawStream.
 */
import { readlinkSync } from 'node:fs'
import { setPriority } from 'node:os'
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { PGlite } from '@electric-sql/pglite'

const { dataDir, sharedBuffers, nice } = workerData as { dataDir: string; sharedBuffers: string; nice: number }

const SSL_REQUEST = 80877103
const CANCEL_REQUEST = 80877102
const PROTOCOL_3 = 196608

// On a small machine this thread competes with the ingest thread for cores.
// Audit writes can wait a few milliseconds (their queue absorbs it); ingest
// replies cannot. Linux schedules threads individually, so lower this one.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
  if (nice > 0 && tid) setPriority(tid, nice)
} catch {
  // Not Linux, or not permitted: run at normal priority.
}

/** One client connection over a MessagePort: frames its bytes into protocol messages, one at a time. */
function serve(db: PGlite, port: MessagePort): { close(): Promise<void> } {
  let buffer = Buffer.alloc(0)
  let queue = Promise.resolve()
  let open = true
  // A copy: `bytes` is a view into PGlite's WASM memory, and posting a view
  // clones its whole buffer (hundreds of MB, ~150 ms a message).
  const send = (bytes: Uint8Array) => open && port.postMessage(bytes.slice())

  async function drain(): Promise<void> {
    for (;;) {
      if (buffer.length >= 8 && buffer.readInt32BE(0) === 8 && buffer.readInt32BE(4) === SSL_REQUEST) {
        buffer = buffer.subarray(8)
        send(Buffer.from('N'))
        continue
      }
      if (buffer.length >= 16 && buffer.readInt32BE(0) === 16 && buffer.readInt32BE(4) === CANCEL_REQUEST) {
        buffer = buffer.subarray(16)
        continue
      }
      let length = 0
      if (buffer.length >= 8 && buffer.readInt32BE(4) === PROTOCOL_3) length = buffer.readInt32BE(0)
      else if (buffer.length >= 5) length = 1 + buffer.readInt32BE(1)
      if (length === 0 || buffer.length < length) return
      const message = new Uint8Array(buffer.subarray(0, length))
      buffer = buffer.subarray(length)
      await db.runExclusive(() => db.execProtocolRawStream(message, { onRawData: (chunk) => send(chunk) }))
    }
  }

  port.on('message', (data: Uint8Array) => {
    buffer = Buffer.concat([buffer, Buffer.from(data.buffer, data.byteOffset, data.byteLength)])
    queue = queue.then(drain).catch((err) => {
      port.postMessage({ error: (err as Error).message })
      port.close()
    })
  })
  const close = async () => {
    if (!open) return
    open = false
    port.close()
    await queue
    // A transaction the connection left open must not hold the next one's session.
    if (db.isInTransaction()) await db.exec('ROLLBACK').catch(() => {})
  }
  port.on('close', () => void close())
  return { close }
}

try {
  const db = await PGlite.create(dataDir, { postgresqlconf: `shared_buffers = '${sharedBuffers}'` })
  let connection: { close(): Promise<void> } | undefined
  parentPort!.on('message', async (msg: { type: string; port?: MessagePort }) => {
    if (msg.type === 'connect' && msg.port) {
      // One session: a new connection replaces the one before (the pool
      // holds one; it reconnects only after losing it).
      await connection?.close()
      connection = serve(db, msg.port)
      return
    }
    if (msg.type === 'stop') {
      await connection?.close()
      await db.close()
      parentPort!.postMessage({ type: 'stopped' })
      parentPort!.close()
    }
  })
  parentPort!.postMessage({ type: 'ready' })
} catch (err) {
  parentPort!.postMessage({ type: 'error', message: (err as Error).message })
}
