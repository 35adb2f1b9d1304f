/**
 * Starts the embedded PostgreSQL (PGlite on a worker thread, see
 * pglite-worker.ts) and gives the exporter a `pg` connection config whose
 * stream is a MessagePort to that thread: there is no network port at all.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { Duplex } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads'

export interface EmbeddedPostgres {
  /** For `pg.Pool`: a stream factory instead of a host and port. */
  connection: { stream: () => Duplex; user: string; database: string }
  /** Close the database cleanly (flushes to disk); idempotent. */
  stop(): Promise<void>
}

/**
 * What `pg` needs of a socket, over a MessagePort: bytes both ways,
 * `connect` right away, close when either side closes.
 */
class PortSocket extends Duplex {
  #port: MessagePort | undefined
  constructor(private readonly open: () => MessagePort) {
    super()
  }

  connect(): this {
    const port = (this.#port = this.open())
    port.on('message', (data: Uint8Array | { error: string }) => {
      if (data instanceof Uint8Array) this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
      else this.destroy(new Error(`embedded postgres: ${data.error}`))
    })
    port.on('close', () => {
      this.push(null)
      this.destroy()
    })
    process.nextTick(() => this.emit('connect'))
    return this
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (!this.#port) return done(new Error('embedded postgres: not connected'))
    this.#port.postMessage(new Uint8Array(chunk))
    done()
  }

  override _read(): void {}

  override _final(done: (err?: Error | null) => void): void {
    this.#port?.close()
    done()
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.#port?.close()
    done(err)
  }

  setNoDelay(): this {
    return this
  }

  setKeepAlive(): this {
    return this
  }

  // pg refs and unrefs its socket around queries, so an idle pool does not hold the process open.
  ref(): this {
    this.#port?.ref()
    return this
  }

  unref(): this {
    this.#port?.unref()
    return this
  }
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
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const timeoutMs = options.startTimeoutMs ?? 120_000
  const data = { dataDir, sharedBuffers: options.sharedBuffers, nice: options.nice }
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await initialize(dataDir, options.sharedBuffers, timeoutMs)
  const worker = spawn(moduleUrl('pglite-worker'), data)
  await waitFor(worker, 'ready', dataDir, timeoutMs)

  const openPort = () => {
    const { port1, port2 } = new MessageChannel()
    worker.postMessage({ type: 'connect', port: port2 }, [port2])
    return port1
  }
  let stopping: Promise<void> | undefined
  return {
    connection: { stream: () => new PortSocket(openPort), user: 'postgres', database: 'postgres' },
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 15_000)
        worker.once('exit', () => { clearTimeout(timer); resolve() })
        worker.postMessage({ type: 'stop' })
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

type WorkerMessage = { type: string; message?: string }

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
