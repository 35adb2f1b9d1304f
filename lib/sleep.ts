/**
 * Resolves after `ms`, or at once when `signal` aborts (its timer and
 * listener cleared). The timer never keeps the process alive on its own: a
 * wait is for something else the process is doing.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms).unref()
    signal?.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
  })
}
