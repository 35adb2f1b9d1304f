/**
 * Starts the embedded PostgreSQL (PGlite on a worker thread, see
 * pglite-worker.ts) and tells the exporter where to connect.
 */
import { mkdirSync } from 'node:fs'
import { Worker } from 'node:worker_threads'

export interface EmbeddedPostgres {
  host: string
  port: number
  /** Close the database cleanly (flushes to disk); idempotent. */
  stop(): Promise<void>
}

/** Worker entry under both tsx (sources) and compiled output. */
function spawn(url: URL, workerData: unknown): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData })
  // Node 20 does not apply --import loaders to a worker's entry file, so the
  // worker registers tsx itself before importing the TypeScript module.
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url.href)}) })`
  return new Worker(bootstrap, { eval: true, workerData })
}

export async function startEmbeddedPostgres(dataDir: string, startTimeoutMs = 120_000): Promise<EmbeddedPostgres> {
  mkdirSync(dataDir, { recursive: true })
  const host = '127.0.0.1'
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  const worker = spawn(new URL(`./pglite-worker${ext}`, import.meta.url), { dataDir, host })

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`embedded postgres did not start within ${startTimeoutMs} ms (data dir ${dataDir})`)), startTimeoutMs)
    worker.once('error', (err) => { clearTimeout(timer); reject(err) })
    worker.once('exit', (code) => { clearTimeout(timer); reject(new Error(`embedded postgres worker exited with code ${code} before listening`)) })
    worker.on('message', (msg: { type: string; port?: number; message?: string }) => {
      if (msg.type === 'listening') { clearTimeout(timer); resolve(msg.port!) }
      if (msg.type === 'error') { clearTimeout(timer); reject(new Error(`embedded postgres failed to start in ${dataDir}: ${msg.message}`)) }
    })
  }).catch(async (err) => {
    await worker.terminate()
    throw err
  })

  let stopping: Promise<void> | undefined
  return {
    host,
    port,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 15_000)
        worker.once('exit', () => { clearTimeout(timer); resolve() })
        worker.postMessage('stop')
      })
      return stopping
    },
  }
}
