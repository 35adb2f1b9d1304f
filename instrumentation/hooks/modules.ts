/**
 * Patching a CommonJS package (pg) whichever way the app loads it, with no
 * loader hook: at start the package is required from where the app resolves
 * it (its main script's folder, else the working directory) and patched, so
 * an ES module `import pg from 'pg'`, which Node serves from the same
 * CommonJS cache, gets the patched one; a copy loaded later through
 * `require` (another folder, another version) is patched as it loads.
 *
 * The OpenTelemetry way (import-in-the-middle's loader hook) puts every ES
 * module of the app through a loader thread and is a dependency tree of its
 * own; one package to patch does not need it.
 */
import Module, { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

type Patch = (exports: unknown) => void

const patches = new Map<string, Patch[]>()
let intercepting = false

/** Calls patch with the package's exports now (if the app can load it) and for every copy required later. */
export function onModule(name: string, patch: Patch): void {
  const list = patches.get(name) ?? []
  list.push(patch)
  patches.set(name, list)
  intercept()
  const base = process.argv[1] ? pathToFileURL(process.argv[1]).href : pathToFileURL(`${process.cwd()}/`).href
  let exports: unknown
  try {
    exports = createRequire(base)(name)
  } catch {
    return // the app does not have it: nothing to patch
  }
  patch(exports)
}

function intercept(): void {
  if (intercepting) return
  intercepting = true
  const loader = Module as unknown as { _load(request: string, parent: unknown, isMain: boolean): unknown }
  const load = loader._load
  loader._load = function (request: string, ...rest: unknown[]) {
    const exports = load.call(this, request, ...(rest as [unknown, boolean]))
    const list = patches.get(request)
    // Each patch marks what it patched, so the cached module returned on every later require costs a lookup.
    if (list) for (const patch of list) patch(exports)
    return exports
  }
}
