/**
 * The folders are the architecture (docs/architecture.md): schemas/ depends on
 * nothing of ours, exporters/, instrumentation/ and api/ on schemas/ only, and
 * only collector/ on the rest. An app importing actline/instrumentation must never
 * load the collector, Fastify or a store client through a stray import.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const ALLOWED: Record<string, string[]> = {
  schemas: [],
  exporters: ['schemas'],
  instrumentation: ['schemas'],
  // The query API reads stores through interfaces in schemas/ (ClickHouseReader,
  // PostgresReader); the collector hands it the exporters' connections.
  api: ['schemas'],
}

function importsOf(dir: string): { file: string; target: string }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .flatMap((file) =>
      [...readFileSync(join(dir, file), 'utf8').matchAll(/^\s*(?:import|export)\b[^'"]*from\s+'\.\.\/([a-z-]+)\//gm)].map((m) => ({
        file: `${dir}/${file}`,
        target: m[1]!,
      })),
    )
}

describe('dependency direction', () => {
  it.each(Object.entries(ALLOWED))('%s/ imports only from %j', (dir, allowed) => {
    const stray = importsOf(dir).filter((i) => !allowed.includes(i.target))
    expect(stray).toEqual([])
  })

  it('finds the imports it checks (the check is not vacuous)', () => {
    expect(importsOf('instrumentation').some((i) => i.target === 'schemas')).toBe(true)
    expect(importsOf('exporters').some((i) => i.target === 'schemas')).toBe(true)
    expect(importsOf('api').some((i) => i.target === 'schemas')).toBe(true)
  })
})
