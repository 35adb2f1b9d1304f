/**
 * Appends activities as NDJSON (one activity per line, the contract's field
 * names, times in RFC 3339) to files under a directory: an archive, a
 * hand-off to object storage, a debug tap (the Collector's `file` exporter,
 * Vector's `file` sink).
 *
 * The open file is named `<final>.tmp`; once closed (rotated by size or age,
 * or at shutdown) it is fsynced and renamed to its final `.ndjson` or
 * `.ndjson.gz` name, so a reader of final names never sees a half file.
 * With gzip each batch is one gzip member (RFC 1952 allows many; gunzip and
 * zcat read them as one stream), so the file is valid at every batch boundary.
 *
 * Exactly once, as the other exporters: a state file records, after each
 * batch is fsynced, the open file's length and the batch's token (a hash of
 * its ids). After a crash the batch in flight is sent again: its token says
 * whether it is already in a file (skipped), and bytes past the recorded
 * length, a write cut short, are cut off before it is written again.
 */
import { constants } from 'node:fs'
import { access, mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { gzip as gzipCallback } from 'node:zlib'
import { replaceFile } from '../../lib/durable-file.ts'
import { livePid, writePidFile } from '../../lib/pid-file.ts'
import { serialQueue } from '../../lib/serial.ts'
import type { Activity } from '../../schemas/activity.ts'
import type { Exporter, Logger } from '../../schemas/component.ts'
import { joinCooperatively } from '../../schemas/cooperative.ts'
import { probe, reportOutcome } from '../classify.ts'
import { batchToken, isoRowEncoder } from '../encoding.ts'
import { classifyFile } from './classify.ts'
import type { FileExporterConfig } from './config.ts'

const gzip = promisify(gzipCallback)

/** Where the exporter stands, saved after every batch. */
interface State {
  /** The open `.tmp` file, if any. */
  file?: string
  /** Its length through the last batch written whole. */
  end: number
  opened_at?: number
  /** The last batch written: a resend of it after a crash is skipped. */
  token?: string
}

const STATE_FILE = '.file-export.state'
/** Names the process writing the directory: one at a time. */
const PID_FILE = '.file-export.pid'
const TMP = '.tmp'

interface OpenFile {
  name: string
  handle: FileHandle
  openedAt: number
}

export function createFileExporter(config: FileExporterConfig & { directory: string }, logger: Logger): Exporter {
  const dir = config.directory
  const extension = config.gzip ? '.ndjson.gz' : '.ndjson'
  let state: State = { end: 0 }
  let current: OpenFile | undefined
  let timer: NodeJS.Timeout | undefined
  let started = false
  let release: (() => void) | undefined
  let sequence = 0
  /** Exports and rotations run one at a time, in order. */
  const serial = serialQueue()

  async function saveState(next: State): Promise<void> {
    await replaceFile(join(dir, STATE_FILE), JSON.stringify(next))
    state = next
  }

  async function syncDir(): Promise<void> {
    const handle = await open(dir, 'r')
    await handle.sync().finally(() => handle.close())
  }

  async function openNew(): Promise<OpenFile> {
    for (;;) {
      const stamp = new Date().toISOString().replaceAll(':', '').replaceAll('-', '')
      const name = `activities-${stamp}-${String(sequence++).padStart(4, '0')}${extension}${TMP}`
      try {
        const handle = await open(join(dir, name), 'wx')
        const file = { name, handle, openedAt: Date.now() }
        // Referenced before the first byte is written: a .tmp the state does
        // not name holds no batch that was acknowledged.
        await saveState({ ...state, file: name, end: 0, opened_at: file.openedAt }).catch(async (err: unknown) => {
          await handle.close()
          await rm(join(dir, name), { force: true })
          throw err
        })
        return file
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
    }
  }

  /** Close the open file under its final name. Until the rename is done it stays the open file, to be closed again. */
  async function finish(): Promise<void> {
    if (!current) return
    const { name, handle } = current
    await handle.truncate(state.end)
    await handle.sync()
    await rename(join(dir, name), join(dir, name.slice(0, -TMP.length)))
    current = undefined
    await handle.close().catch(() => {})
    await syncDir()
    await saveState({ end: 0, ...(state.token && { token: state.token }) })
    logger.debug({ file: name.slice(0, -TMP.length) }, 'file: closed')
  }

  /** After a crash: finish the file the state names at its last whole batch; drop .tmp files it does not name. */
  async function recover(): Promise<void> {
    try {
      state = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as State
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      state = { end: 0 }
    }
    for (const name of await readdir(dir)) {
      if (!name.endsWith(TMP) || name === `${STATE_FILE}${TMP}`) continue
      if (name === state.file && state.end > 0) {
        current = { name, handle: await open(join(dir, name), 'r+'), openedAt: state.opened_at ?? Date.now() }
        logger.info({ file: name, bytes: state.end }, 'file: resuming the file open at the last stop')
      } else {
        await rm(join(dir, name))
      }
    }
    if (!current && state.file) await saveState({ end: 0, ...(state.token && { token: state.token }) })
  }

  function due(file: OpenFile): boolean {
    return state.end >= config.rotate_bytes || Date.now() - file.openedAt >= config.rotate_interval_ms
  }

  async function write(batch: readonly Activity[]): Promise<void> {
    if (!started) throw new Error('file exporter is not started')
    const token = batchToken(batch)
    if (token === state.token) return
    if (current && due(current)) await finish()
    current ??= await openNew()
    const text = `${await joinCooperatively(batch, (a) => JSON.stringify(fileRow(a)), '\n')}\n`
    const bytes = config.gzip ? await gzip(text) : Buffer.from(text)
    // Written at the recorded end: bytes a failed write left past it are
    // overwritten, and cut off when the file is closed.
    let offset = 0
    while (offset < bytes.length) {
      const { bytesWritten } = await current.handle.write(bytes, offset, bytes.length - offset, state.end + offset)
      offset += bytesWritten
    }
    await current.handle.truncate(state.end + bytes.length)
    await current.handle.sync()
    await saveState({ file: current.name, end: state.end + bytes.length, opened_at: current.openedAt, token })
  }

  return {
    name: 'file',

    async start() {
      if (started) return
      await mkdir(dir, { recursive: true })
      const holder = livePid(join(dir, PID_FILE))
      if (holder !== undefined && holder !== process.pid) throw new Error(`${dir} is written by another actline process (pid ${holder}); give each collector its own exporters.file.directory`)
      release = writePidFile(join(dir, PID_FILE))
      await recover()
      started = true
      logger.info({ directory: dir, gzip: config.gzip }, 'file: writing activities')
      // A quiet collector still closes its file on time.
      timer = setInterval(() => {
        if (current && due(current)) serial(finish).catch((err: Error) => logger.warn({ err: err.message }, 'file: could not close the file'))
      }, Math.min(1000, config.rotate_interval_ms)).unref()
    },

    export(batch) {
      return reportOutcome(() => serial(() => write(batch)), classifyFile)
    },

    ping() {
      return probe(() => access(dir, constants.W_OK))
    },

    async shutdown() {
      if (!started) return
      started = false
      clearInterval(timer)
      await serial(finish)
      release?.()
    },
  }
}

/** The activity under the contract's field names, in row order; times in RFC 3339, absent fields left out. */
const fileRow = isoRowEncoder()
