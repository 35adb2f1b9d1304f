/**
 * `<data_dir>/actline.pid`: which process holds the embedded stores. The
 * embedded engines belong to one process each (chDB binds one data
 * directory per process; PGlite has one session), so tools that open them
 * (`actline dead-letter replay`) check it first. A pid left by a kill -9 is
 * recognised as dead and ignored.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const pidPath = (dataDir: string) => join(dataDir, 'actline.pid')

export function writePidFile(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true })
  writeFileSync(pidPath(dataDir), `${process.pid}\n`)
  return () => {
    if (runningCollector(dataDir) === process.pid) rmSync(pidPath(dataDir), { force: true })
  }
}

/** The pid of a live process holding this data directory, if any. */
export function runningCollector(dataDir: string): number | undefined {
  let pid: number
  try {
    pid = Number(readFileSync(pidPath(dataDir), 'utf8').trim())
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
