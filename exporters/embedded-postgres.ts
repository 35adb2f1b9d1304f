/**
 * Starts the embedded PostgreSQL (PGlite on a worker thread, see
 * pglite-worker.ts) and tells the exporter where to connect.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { join } from 'node:path'
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

export interface EmbeddedPostgresOptions {
  /** PostgreSQL's shared_buffers, e.g. '32MB'. */
  sharedBuffers: string
  /** Niceness of the PGlite thread (0-19; 0 keeps normal priority). */
  nice: number
  startTimeoutMs?: number
}

export async function startEmbeddedPostgres(dataDir: string, options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  mkdirSync(dataDir, { recursive: true })
  const host = '127.0.0.1'
  const timeoutMs = options.startTimeoutMs ?? 120_000
  const data = { dataDir, host, sharedBuffers: options.sharedBuffers, nice: options.nice }
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await initialize(dataDir, options.sharedBuffers, timeoutMs)
  const worker = spawn(moduleUrl('pglite-worker'), data)
  const { port } = await waitFor(worker, 'listening', dataDir, timeoutMs)

  let stopping: Promise<void> | undefined
  return {
    host,
    port: port!,
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

/** A sibling module, as source under tsx (tests) or compiled (dist). */
function moduleUrl(name: string): URL {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./${name}${ext}`, import.meta.url)
}

/** Run initdb in a child process (see pglite-init.ts for why). */
async function initialize(dataDir: string, sharedBuffers: string, timeoutMs: number): Promise<void> {
  const script = moduleUrl('pglite-init')
  const loader = script.pathname.endsWith('.ts') ? ['--import', 'tsx'] : []
  try {
    await promisify(execFile)(process.execPath, [...loader, fileURLToPath(script), dataDir, sharedBuffers], { timeout: timeoutMs })
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`embedded postgres could not initialize ${dataDir}: ${(e.stderr || e.message).trim().split('\n').slice(-3).join(' ')}`)
  }
}

type WorkerMessage = { type: string; port?: number; message?: string }

/** Resolve on the worker's `type` message; reject (and stop it) on error, early exit or timeout. */
async function waitFor(worker: Worker, type: string, dataDir: string, timeoutMs: number): Promise<WorkerMessage> {
  try {
    return await new Promise<WorkerMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`embedded postgres did not start within ${timeoutMs} ms (data dir ${dataDir})`)), timeoutMs)
      const fail = (err: Error) => { clearTimeout(timer); reject(err) }
      worker.once('error', fail)
      worker.once('exit', (code) => fail(new Error(`embedded postgres worker exited with code ${code} before it was ${type}`)))
      worker.on('message', (msg: WorkerMessage) => {
        if (msg.type === type) { clearTimeout(timer); resolve(msg) }
        if (msg.type === 'error') fail(new Error(`embedded postgres failed to start in ${dataDir}: ${msg.message}`))
      })
    })
  } catch (err) {
    await worker.terminate()
    throw err
  }
}
