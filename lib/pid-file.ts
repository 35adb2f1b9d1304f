/**
 * A pid file: which live process holds something that is one process's at a
 * time. The collector's `<data_dir>/actline.pid` names the process holding
 * the embedded stores (chDB binds one data directory per process; PGlite has
 * one session), so tools that open them (`actline dead-letter replay`) check
 * it first; the file exporter keeps one in its directory, so two processes
 * never append to the same files. A pid left by a kill -9 is recognised as
 * dead and ignored.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

/** Write this process's pid; the returned function removes the file if it is still ours. */
export function writePidFile(path: string): () => void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${process.pid}\n`)
  return () => {
    if (livePid(path) === process.pid) rmSync(path, { force: true })
  }
}

/** The pid of a live process named by the file, if any. */
export function livePid(path: string): number | undefined {
  let pid: number
  try {
    pid = Number(readFileSync(path, 'utf8').trim())
  } catch {
    return undefined
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined
  try {
    process.kill(pid, 0)
    return pid
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined
  }
}
