#!/usr/bin/env node
// `npm install` / `npm ci` in a clone builds the collector, the SDK and the
// web monitor once, so that `npm start` only starts. A production install
// (`--omit=dev`) has no compiler: from the packed tarball it needs none
// (dist/ ships in it); from a clone it says what to do instead of failing.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const has = (name) => {
  try {
    require.resolve(`${name}/package.json`)
    return true
  } catch {
    return false
  }
}
if (!has('typescript') || !has('vite')) {
  if (!existsSync('dist/collector/cli.js')) {
    console.warn('actline: not built, and the build tools are dev dependencies: run `npm install` (with dev dependencies) once, or install the packed tarball (`npm pack`), which ships built')
  }
  process.exit(0)
}
const run = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' })
process.exit(run.status ?? 1)
