/**
 * The folders are the architecture (docs/architecture.md), and this test
 * keeps them so:
 *
 * - lib/ and schemas/ depend on nothing of ours (lib/ on nothing at all);
 *   exporters/, instrumentation/ and api/ on those two only; only
 *   collector/ on the rest. An app importing @actline/instrumentation must
 *   never load the collector, Fastify or a store client through a stray import.
 * - An exporter's folder imports only itself and exporters/'s shared files;
 *   only the registry (exporters/index.ts) names an exporter's folder.
 * - Inside collector/ the layers point one way: wal/ <- pipeline/,
 *   receivers/ <- server/ <- the wiring (collector/*.ts), which nothing
 *   below it imports.
 * - No import cycles, anywhere.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { describe, expect, it } from 'vitest'

const SOURCE_DIRS = ['lib', 'schemas', 'exporters', 'instrumentation', 'api', 'toolkit', 'collector']

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    // Build output and installed packages are not source.
    if (statSync(path).isDirectory()) return name === 'dist' || name === 'node_modules' ? [] : filesUnder(path)
    return path.endsWith('.ts') ? [path] : []
  })
}

interface Edge {
  from: string
  to: string
}

/** Every relative import of our source, static or dynamic, resolved to a repository path. */
function edges(): Edge[] {
  return SOURCE_DIRS.flatMap(filesUnder).flatMap((from) =>
    [...readFileSync(from, 'utf8').matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)/gm)].map((m) => ({
      from,
      to: normalize(join(dirname(from), m[1] ?? m[2]!)),
    })),
  )
}

const ALL = edges()
const top = (path: string) => path.split('/')[0]!
/** collector/wal/x.ts -> 'wal'; collector/cli.ts -> 'wiring'. */
const collectorLayer = (path: string) => (path.split('/').length > 2 ? path.split('/')[1]! : 'wiring')

const ALLOWED: Record<string, string[]> = {
  lib: ['lib'],
  schemas: ['schemas', 'lib'],
  exporters: ['exporters', 'schemas', 'lib'],
  instrumentation: ['instrumentation', 'schemas', 'lib'],
  // The query API reads stores through interfaces in schemas/ (ClickHouseReader,
  // PostgresReader); the collector hands it the exporters' connections.
  api: ['api', 'schemas', 'lib'],
  // The migration toolkit works on the user's database, beside the pipeline: it reaches the collector only over HTTP.
  toolkit: ['toolkit', 'schemas', 'lib'],
}

const COLLECTOR_ALLOWED: Record<string, string[]> = {
  wal: ['wal'],
  pipeline: ['pipeline', 'wal'],
  receivers: ['receivers'],
  server: ['server', 'receivers', 'pipeline', 'wal'],
  extensions: ['extensions'],
}

describe('dependency direction', () => {
  it.each(Object.entries(ALLOWED))('%s/ imports only from %j', (dir, allowed) => {
    const stray = ALL.filter((e) => top(e.from) === dir && !allowed.includes(top(e.to)))
    expect(stray).toEqual([])
  })

  it('an exporter folder imports only itself, exporters/ shared files and the lower layers; only the registry imports a folder', () => {
    const folderOf = (p: string) => (p.startsWith('exporters/') && p.split('/').length > 2 ? p.split('/')[1] : undefined)
    const stray = ALL.filter((e) => {
      const to = folderOf(e.to)
      if (to === undefined) return false
      return e.from === 'exporters/index.ts' ? false : folderOf(e.from) !== to
    })
    expect(stray).toEqual([])
  })

  it.each(Object.entries(COLLECTOR_ALLOWED))('collector/%s/ imports only from collector/%j (and the layers outside collector/)', (layer, allowed) => {
    const stray = ALL.filter((e) => e.from.startsWith(`collector/${layer}/`) && top(e.to) === 'collector' && !allowed.includes(collectorLayer(e.to)))
    expect(stray).toEqual([])
  })

  it('collector/wal, pipeline and receivers reach outside collector/ only for schemas/ and lib/', () => {
    const stray = ALL.filter((e) => /^collector\/(wal|pipeline|receivers)\//.test(e.from) && !['collector', 'schemas', 'lib'].includes(top(e.to)))
    expect(stray).toEqual([])
  })

  it('a receiver folder never imports another receiver', () => {
    const folderOf = (p: string) => (p.startsWith('collector/receivers/') && p.split('/').length > 3 ? p.split('/')[2] : undefined)
    const stray = ALL.filter((e) => {
      const to = folderOf(e.to)
      return to !== undefined && e.from !== 'collector/receivers/index.ts' && folderOf(e.from) !== to
    })
    expect(stray).toEqual([])
  })

  it('only the command line imports the processes (collector.ts, api-server.ts): cli.ts and its demo command', () => {
    const commands = ['collector/cli.ts', 'collector/demo/demo.ts']
    const stray = ALL.filter((e) => ['collector/collector.ts', 'collector/api-server.ts'].includes(e.to) && !commands.includes(e.from))
    expect(stray).toEqual([])
  })

  it('has no import cycle', () => {
    const graph = new Map<string, string[]>()
    for (const e of ALL) graph.set(e.from, [...(graph.get(e.from) ?? []), e.to])
    const cycles: string[][] = []
    const state = new Map<string, 'open' | 'done'>()
    const visit = (node: string, path: string[]) => {
      if (state.get(node) === 'done') return
      if (state.get(node) === 'open') return void cycles.push([...path.slice(path.indexOf(node)), node])
      state.set(node, 'open')
      for (const next of graph.get(node) ?? []) visit(next, [...path, node])
      state.set(node, 'done')
    }
    for (const node of graph.keys()) visit(node, [])
    expect(cycles).toEqual([])
  })

  it("keeps the SDK package to its own dependencies: what its entry points reach imports no package it does not declare", () => {
    const pkg = JSON.parse(readFileSync('instrumentation/package.json', 'utf8')) as { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> }
    const declared = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})])
    const reached = new Set<string>()
    const walk = (file: string) => {
      if (reached.has(file)) return
      reached.add(file)
      for (const e of ALL) if (e.from === file) walk(e.to)
    }
    walk('instrumentation/index.ts')
    walk('instrumentation/register.ts')
    const stray: string[] = []
    for (const file of reached) {
      for (const m of readFileSync(file, 'utf8').matchAll(/^\s*(import|export)\b(\s+type\b)?[^'"]*?from\s+'([^.'][^']*)'/gm)) {
        const name = m[3]!.startsWith('@') ? m[3]!.split('/').slice(0, 2).join('/') : m[3]!.split('/')[0]!
        if (name.startsWith('node:') || declared.has(name)) continue
        stray.push(`${file}: ${m[3]}`)
      }
    }
    expect(stray).toEqual([])
    // The walk reached the shared contract, and the collector's zod schema is not part of it.
    expect(reached.has('schemas/span-activity.ts')).toBe(true)
    expect(reached.has('schemas/activity.ts')).toBe(false)
  })

  it('finds the imports it checks (the checks are not vacuous)', () => {
    expect(ALL.length).toBeGreaterThan(200)
    expect(ALL.some((e) => top(e.from) === 'instrumentation' && top(e.to) === 'schemas')).toBe(true)
    expect(ALL.some((e) => e.from === 'exporters/index.ts' && e.to.startsWith('exporters/clickhouse/'))).toBe(true)
    expect(ALL.some((e) => e.from.startsWith('collector/server/') && e.to.startsWith('collector/receivers/'))).toBe(true)
    expect(ALL.some((e) => e.from.startsWith('collector/pipeline/') && e.to.startsWith('collector/wal/'))).toBe(true)
    // A dynamic import is an edge too.
    expect(ALL.some((e) => e.from === 'exporters/postgres/embedded.ts' || e.from.startsWith('exporters/clickhouse/'))).toBe(true)
  })
})
