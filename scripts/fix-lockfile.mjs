#!/usr/bin/env node
// Re-add inert lockfile entries for chdb's platform packages that the registry
// does not serve. npm >= 11.16 writes a lockfile without them and then refuses
// it in `npm ci` ("Missing: @chdb/lib-darwin-arm64@ from lock file"); npm 11.13
// wrote these placeholders itself. Run after any `npm install` that rewrites
// package-lock.json:  node scripts/fix-lockfile.mjs
import { readFileSync, writeFileSync } from 'node:fs'

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'))
const chdb = JSON.parse(readFileSync('node_modules/chdb/package.json', 'utf8'))
const platform = (name) => {
  const [, os, cpu] = /lib-(darwin|linux)-(arm64|x64)/.exec(name) ?? []
  return os ? { cpu: [cpu], os: [os] } : undefined
}
let added = 0
for (const [name, version] of Object.entries(chdb.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`
  const p = platform(name)
  if (lock.packages[key] || !p) continue
  lock.packages[key] = { version, ...p, optional: true }
  added++
}
const keys = Object.keys(lock.packages).sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b)))
lock.packages = Object.fromEntries(keys.map((k) => [k, lock.packages[k]]))
writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\n')
console.log(`package-lock.json: ${added} placeholder entr${added === 1 ? 'y' : 'ies'} added`)
