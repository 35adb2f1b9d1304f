/**
 * Worker thread that owns the embedded PostgreSQL (PGlite, WASM) and serves
 * it over the wire protocol on a loopback port. It lives on its own thread
 * because PGlite computes on the thread that owns it: on the main thread
 * every audit insert would stall ingest.
 */
import { readlinkSync } from 'node:fs'
import { setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const { dataDir, host, sharedBuffers, nice } = workerData as { dataDir: string; host: string; sharedBuffers: string; nice: number }

// On a small machine this thread competes with the ingest thread for cores.
// Audit writes can wait a few milliseconds (their queue absorbs it); ingest
// replies cannot. Linux schedules threads individually, so lower this one.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
  if (nice > 0 && tid) setPriority(tid, nice)
} catch {
  // Not Linux, or not permitted: run at normal priority.
}

try {
  const db = await PGlite.create(dataDir, { postgresqlconf: `shared_buffers = '${sharedBuffers}'` })
  // One connection: PGlite has a single session, and the socket server's
  // multiplexer would interleave transactions without isolation.
  const server = new PGLiteSocketServer({ db, host, port: 0, maxConnections: 1 })
  await server.start()
  const port = Number(server.getServerConn().split(':').pop())
  parentPort!.on('message', async (msg: unknown) => {
    if (msg !== 'stop') return
    await server.stop()
    await db.close()
    parentPort!.postMessage({ type: 'stopped' })
    parentPort!.close()
  })
  parentPort!.postMessage({ type: 'listening', port })
} catch (err) {
  parentPort!.postMessage({ type: 'error', message: (err as Error).message })
}
