/**
 * Preloaded into the collector by bench:rates (`node --require`), which Node
 * also runs in every worker thread: each thread that runs it writes its OS
 * thread id (from /proc/thread-self) to $ACTLINE_THREAD_PROBE_DIR. The main
 * thread also lists the threads that exist before the collector runs a line:
 * V8's platform threads (GC helpers, the compiler). Any other unnamed thread
 * that appears later is libuv's pool (file writes, fsync, zlib). The product
 * names none of its threads, so this is how the benchmark tells them apart.
 */
const { readdirSync, readlinkSync, writeFileSync } = require('node:fs')
const { isMainThread } = require('node:worker_threads')

const dir = process.env.ACTLINE_THREAD_PROBE_DIR
if (dir) {
  const tid = readlinkSync('/proc/thread-self').split('/').pop()
  if (isMainThread) writeFileSync(`${dir}/main.json`, JSON.stringify({ main: tid, platform: readdirSync('/proc/self/task').filter((t) => t !== tid) }))
  else writeFileSync(`${dir}/worker-${tid}`, tid)
}
