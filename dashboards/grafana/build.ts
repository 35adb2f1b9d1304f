/**
 * npm run dashboards:build — writes each dashboard of src/ as the JSON
 * Grafana provisions (dashboards/grafana/*.json). The JSON is committed, so
 * Grafana needs nothing of this repository but the folder; a test fails
 * when it is not what this writes.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DASHBOARDS } from './src/index.ts'

export function dashboardJson(name: string): string {
  return `${JSON.stringify(DASHBOARDS[name], null, 2)}\n`
}

if (process.argv[1] === import.meta.filename) {
  for (const name of Object.keys(DASHBOARDS)) {
    writeFileSync(join(import.meta.dirname, name), dashboardJson(name))
    process.stdout.write(`wrote dashboards/grafana/${name}\n`)
  }
}
