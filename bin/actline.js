#!/usr/bin/env node
// Runs the TypeScript sources through tsx, so there is no build step between
// `npm install` and a running collector.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../collector/cli.ts')
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
