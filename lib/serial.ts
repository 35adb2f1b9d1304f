/**
 * One at a time, in order: each task starts when the one before it has
 * settled, whether it resolved or rejected, and a failure reaches only its
 * own caller.
 */
export function serialQueue(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve()
  return (task) => {
    const run = tail.then(task, task)
    tail = run.catch(() => {})
    return run
  }
}
