/**
 * CPU time read from /proc, and pinning with taskset: what bench:app and
 * bench:triggers measure with. CPU per unit of work from the kernel's own
 * counters is steadier on a shared machine than throughput.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

const TICK = 100 // USER_HZ: /proc's CPU times are in ticks of 1/100 s on Linux

/** utime + stime of a process, in seconds, and with `children` those of its children that have exited (the server's backends). */
export function processCpu(pid: number | string, children = false): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
    return (Number(fields[11]) + Number(fields[12]) + (children ? Number(fields[13]) + Number(fields[14]) : 0)) / TICK
  } catch {
    return 0 // gone meanwhile
  }
}

/** utime + stime of one thread of a process, in seconds (the main thread's id is the process's). */
export function threadCpuSeconds(pid: number, tid: number): number {
  return processCpu(`${pid}/task/${tid}`)
}

/** Pids of the PostgreSQL server's processes (the postmaster and its backends). */
export function postgresPids(): string[] {
  return readdirSync('/proc').filter((d) => {
    if (!/^\d+$/.test(d)) return false
    try {
      return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'postgres'
    } catch {
      return false
    }
  })
}

/** CPU seconds of every PostgreSQL process, backends that exited included. */
export function postgresCpu(): number {
  let sum = 0
  for (const pid of postgresPids()) sum += processCpu(pid, true)
  return sum
}

/** Busy CPU seconds of the whole machine (/proc/stat). */
export function machineCpu(): number {
  const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  return (user! + nice! + system! + irq! + softirq!) / TICK
}

/** Moves a running process (every thread) to these CPUs: `taskset -a -p -c`. New children (backends) inherit it. */
export function pin(pid: number | string, cpus: string): void {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' })
  } catch {
    // exited meanwhile
  }
}

/** PostgreSQL's processes on these CPUs; returns how to put them back on all of them. */
export function pinPostgres(cpus: string): () => void {
  for (const pid of postgresPids()) pin(pid, cpus)
  return () => {
    for (const pid of postgresPids()) pin(pid, `0-${cpuCount() - 1}`)
  }
}

export function cpuCount(): number {
  return readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length
}
