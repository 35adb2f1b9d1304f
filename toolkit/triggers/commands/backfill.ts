import { rmSync } from 'node:fs'
import { asToolkitError, dbUrl, givenColumns, instant, ToolkitError, type Command } from '../command.ts'
import {
  backfillSource,
  CollectorError,
  nullKeyRows,
  readCheckpoint,
  reachCollector,
  readPages,
  recordRefusals,
  remaining,
  sendPage,
  writeCheckpoint,
  type Checkpoint,
  type Page,
  type Refusal,
} from '../backfill.ts'

const DEFAULT_COLLECTOR = 'http://127.0.0.1:4318'
/** Requests in flight: enough to keep the collector's two stages (parse, log append) busy while the next page is read. */
const IN_FLIGHT = 3

export const backfillCommand: Command = {
  name: 'backfill',
  usage: `actline triggers backfill --db URL --legacy-table T [--since TIME] [--until TIME] [--collector ${DEFAULT_COLLECTOR}]
                          [--api-key K] [--checkpoint FILE] [--restart] [--batch 5000] [--key-column C]
                          [--table-column C] [--operation-column C] [--time-column C] [--id-column C]
                          [--old-column C] [--new-column C] [--actor-column C] [--json]
    copy the legacy audit rows into actline through the collector, as db.insert|update|delete
    activities with ids derived from the rows (--collector or ACTLINE_COLLECTOR, --api-key or
    ACTLINE_API_KEY); resumable from its checkpoint file, so a second
    run, or one after a crash, stores each row once; --until is best the dual run's start`,
  example: 'actline triggers backfill --db postgres://app@127.0.0.1:5432/shop --legacy-table audit_logs --until 2026-11-24T00:00:00Z',
  async run(o, open) {
    const legacyTable = o['legacy-table']
    if (!legacyTable) throw new ToolkitError('--legacy-table is required: the table the audit triggers write (schema.table or table)')
    const givenSince = o.since === undefined ? undefined : instant(o.since, '--since')
    const until = o.until === undefined ? new Date() : instant(o.until, '--until')
    const pageSize = o.batch === undefined ? 5000 : Number(o.batch)
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 50_000) throw new ToolkitError(`--batch is the rows per request, 1 to 50000, got '${o.batch}'`)
    const collector = (o.collector ?? process.env.ACTLINE_COLLECTOR ?? DEFAULT_COLLECTOR).replace(/\/+$/, '')
    if (!/^https?:\/\/[^/]/.test(collector)) throw new ToolkitError(`--collector is the collector's URL, e.g. ${DEFAULT_COLLECTOR}, got '${collector}'`)
    const apiKey = o['api-key'] ?? process.env.ACTLINE_API_KEY

    const client = await open(dbUrl(o))
    await reachCollector(collector).catch((err) => {
      throw asToolkitError(err)
    })
    const source = await backfillSource(client, legacyTable, { ...givenColumns(o, ['table', 'operation', 'time', 'id', 'old', 'new', 'actor'] as const), key: o['key-column'] }).catch((err) => {
      throw asToolkitError(err)
    })
    const file = o.checkpoint ?? `actline-backfill.${`${source.database}.${source.table}`.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`
    const refusalsFile = file.replace(/\.json$/, '') + '.refused.ndjson'
    const fresh: Checkpoint = {
      format: 'actline-backfill-checkpoint',
      version: 1,
      database: source.database,
      table: source.table,
      key_column: source.key,
      since: givenSince?.toISOString() ?? null,
      cursor: null,
      sent: 0,
      rejected: 0,
      updated_at: new Date().toISOString(),
    }
    const found = o.restart ? undefined : (() => {
      try {
        return readCheckpoint(file)
      } catch (err) {
        throw new ToolkitError(`${(err as Error).message}: pass another --checkpoint, or --restart to start over`)
      }
    })()
    if (found && (found.database !== fresh.database || found.table !== fresh.table || found.key_column !== fresh.key_column)) {
      throw new ToolkitError(`${file} is the checkpoint of another backfill (${found.database} ${found.table} by ${found.key_column}): pass --checkpoint for this one, or --restart to start over`)
    }
    const checkpoint: Checkpoint = found ?? fresh
    // A resumed run keeps its window's start (a relative --since moves with the clock): the rows before the cursor were chosen by it.
    const since = found ? (found.since === null ? undefined : new Date(found.since)) : givenSince
    if (!found) {
      // Written before anything is sent: a checkpoint that cannot be kept would make the run impossible to resume.
      try {
        writeCheckpoint(file, checkpoint)
        rmSync(refusalsFile, { force: true })
      } catch (err) {
        throw new ToolkitError(`cannot write the checkpoint ${file}: ${(err as Error).message}; pass --checkpoint FILE in a writable directory`)
      }
    }

    // Rows whose key is NULL are never in a page: a fresh run refuses them by name once, in the refused file and the counts.
    if (!found) {
      const nullKeys = await nullKeyRows(client, source, { since, until })
      if (nullKeys.length) {
        recordRefusals(refusalsFile, nullKeys)
        checkpoint.rejected += nullKeys.length
        writeCheckpoint(file, checkpoint)
      }
    }
    const startedWith = checkpoint.sent
    const left = await remaining(client, source, { cursor: checkpoint.cursor, since, until })
    const progress = progressBar(left, o.json === true)
    if (found && givenSince && found.since !== givenSince.toISOString()) progress.note(`--since ${o.since}: resuming with the checkpoint's window instead, since ${found.since ?? 'the start'} (--restart to use the new one)`)
    if (found) progress.note(`resuming ${source.table} after key ${found.cursor ?? '(none)'}: ${found.sent.toLocaleString('en-US')} rows already stored, ${left.toLocaleString('en-US')} to go`)

    // Pages go out IN_FLIGHT at a time; the checkpoint moves past a page only once it and every page before it are acknowledged.
    const controller = new AbortController()
    const stop = () => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    const inFlight: { page: Page; reply: Promise<Refusal[]> }[] = []
    const settleOldest = async () => {
      const { page, reply } = inFlight.shift()!
      const refused = [...page.refused, ...(await reply)]
      recordRefusals(refusalsFile, refused)
      checkpoint.cursor = page.lastKey
      checkpoint.sent += page.activities.length + page.refused.length - refused.length
      checkpoint.rejected += refused.length
      checkpoint.updated_at = new Date().toISOString()
      writeCheckpoint(file, checkpoint)
      progress.update(page.activities.length + page.refused.length)
    }
    const started = Date.now()
    const stopped = () => {
      console.error(`stopped: ${checkpoint.sent.toLocaleString('en-US')} rows stored up to key ${checkpoint.cursor ?? '(none)'} (${file}); run the same command to resume`)
      return 130
    }
    try {
      for await (const page of readPages(client, source, { cursor: checkpoint.cursor, since, until, pageSize })) {
        const reply = page.activities.length ? sendPage(collector, apiKey, page, controller.signal) : Promise.resolve([])
        reply.catch(() => {}) // awaited in order below; a failure is seen there
        inFlight.push({ page, reply })
        if (inFlight.length >= IN_FLIGHT) await settleOldest()
        if (controller.signal.aborted) break
      }
      while (inFlight.length && !controller.signal.aborted) await settleOldest()
    } catch (err) {
      progress.end()
      if (controller.signal.aborted) return stopped()
      if (err instanceof CollectorError) throw new ToolkitError(`${err.message} (${checkpoint.sent.toLocaleString('en-US')} rows stored so far, checkpoint ${file})`)
      throw err
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    }
    progress.end()
    if (controller.signal.aborted) return stopped()
    const seconds = (Date.now() - started) / 1000
    const thisRun = checkpoint.sent - startedWith
    const summary = {
      table: source.table,
      collector,
      sent: thisRun,
      stored_total: checkpoint.sent,
      rejected_total: checkpoint.rejected,
      seconds: Math.round(seconds * 10) / 10,
      rows_per_second: seconds > 0 ? Math.round(thisRun / seconds) : 0,
      checkpoint: file,
      ...(checkpoint.rejected > 0 && { refused_rows: refusalsFile }),
    }
    if (o.json) console.log(JSON.stringify(summary))
    else {
      console.log(
        thisRun === 0 && left === 0
          ? `nothing to send: every row of ${source.table} up to key ${checkpoint.cursor ?? '(none)'} is stored (${checkpoint.sent.toLocaleString('en-US')} rows; ${file})`
          : `backfilled ${thisRun.toLocaleString('en-US')} rows of ${source.table} into ${collector} in ${summary.seconds} s (${summary.rows_per_second.toLocaleString('en-US')} rows/s); ${checkpoint.sent.toLocaleString('en-US')} stored in all; checkpoint ${file}`,
      )
      if (checkpoint.rejected) console.log(`${checkpoint.rejected.toLocaleString('en-US')} rows were refused, each with its reason, in ${refusalsFile}`)
    }
    return checkpoint.rejected ? 1 : 0
  },
}

/** Rows done of `total`, the rate and the ETA, on stderr: one line redrawn on a terminal, a line every 2 s otherwise. */
function progressBar(total: number, quiet: boolean) {
  const tty = process.stderr.isTTY === true
  const started = Date.now()
  let done = 0
  let shown = 0
  const draw = () => {
    if (quiet) return
    const s = (Date.now() - started) / 1000
    const rate = s > 0 ? done / s : 0
    const width = 30
    const filled = total ? Math.min(width, Math.round((done / total) * width)) : width
    const eta = rate > 0 ? Math.max(0, (total - done) / rate) : 0
    const line = `backfill [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} rows, ${Math.round(rate).toLocaleString('en-US')} rows/s, ETA ${eta.toFixed(0)} s`
    process.stderr.write(tty ? `\r${line} ` : `${line}\n`)
  }
  return {
    note: (line: string) => process.stderr.write(`${line}\n`),
    update(rows: number) {
      done += rows
      if (tty || Date.now() - shown >= 2000) {
        shown = Date.now()
        draw()
      }
    },
    end() {
      if (done > 0 || total > 0) draw()
      if (tty && !quiet) process.stderr.write('\n')
    },
  }
}
