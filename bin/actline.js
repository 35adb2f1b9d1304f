#!/usr/bin/env node
// The compiled collector (npm install builds it through the `prepare` script).
import { existsSync } from 'node:fs'

const entry = new URL('../dist/collector/cli.js', import.meta.url)
if (!existsSync(entry)) {
  console.error('actline is not built: run `npm run build` (npm install does it for you)')
  process.exit(1)
}
const { main } = await import(entry.href)
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
