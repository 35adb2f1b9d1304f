import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, parseConfig } from '../../collector/config.ts'
import { tempDir } from '../helpers/stores.ts'

const dir = tempDir()
afterAll(() => dir.remove())

function file(name: string, text: string): string {
  const path = join(dir.path, name)
  writeFileSync(path, text)
  return path
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

describe('config', () => {
  it('defaults to embedded stores under ./data on loopback port 4318', () => {
    const c = parseConfig({})
    expect(c.server).toMatchObject({ host: '127.0.0.1', port: 4318 })
    expect(c.exporters.clickhouse.url).toBeUndefined()
    expect(c.exporters.clickhouse.path).toBe(join(process.cwd(), 'data', 'clickhouse'))
    expect(c.exporters.postgres.path).toBe(join(process.cwd(), 'data', 'postgres'))
  })

  it('gives each exporter its own batch: the defaults, pipeline.batch for all, pipeline.batch.exporters.<name> for one', async () => {
    const { enabledExporters } = await import('../../collector/components.ts')
    const { createLogger } = await import('../../collector/server/logger.ts')
    const batches = (raw: object) => Object.fromEntries(enabledExporters(parseConfig(raw), createLogger('silent')).map((e) => [e.name, e.batch.send_batch_size]))
    expect(batches({})).toEqual({ clickhouse: 10_000, postgres: 10_000 })
    expect(batches({ pipeline: { batch: { exporters: { clickhouse: { send_batch_size: 50_000 } } } } })).toEqual({ clickhouse: 50_000, postgres: 10_000 })
    expect(batches({ pipeline: { batch: { send_batch_size: 400 } } })).toEqual({ clickhouse: 400, postgres: 400 })
    expect(batches({ pipeline: { batch: { send_batch_size: 400, exporters: { postgres: { send_batch_size: 2000 } } } } })).toEqual({ clickhouse: 400, postgres: 2000 })
    const timeouts = enabledExporters(parseConfig({ pipeline: { batch: { exporters: { clickhouse: { timeout_ms: 5000 } } } } }), createLogger('silent')).map((e) => [e.name, e.batch.timeout_ms])
    expect(timeouts).toEqual([['clickhouse', 5000], ['postgres', 1000]])
    expect(errorOf(() => parseConfig({ pipeline: { batch: { exporters: { clikhouse: {} } } } })).issues.map((i) => i.path)).toEqual(['pipeline.batch.exporters'])
  })

  it('names the key path and the bad value of each error', () => {
    const err = errorOf(() => parseConfig({ server: { port: 70000 }, pipeline: { batch: { timeout_ms: 'soon' } } }))
    expect(err.issues.map((i) => i.path)).toEqual(['server.port', 'pipeline.batch.timeout_ms'])
    expect(err.message).toContain('`server.port`')
    expect(err.message).toContain('(got 70000)')
  })

  it('rejects an unknown key, so a typo is not silently ignored', () => {
    const err = errorOf(() => parseConfig({ exporters: { clikhouse: {} } }))
    expect(err.message).toMatch(/exporters.*clikhouse/)
  })

  it('lets the environment override the file for store URLs and the port', () => {
    const path = file('env.yaml', 'server:\n  port: 5000\nexporters:\n  postgres:\n    url: postgres://file@db/x\n')
    const c = loadConfig(path, {
      ACTLINE_PORT: '6000',
      ACTLINE_POSTGRES_URL: 'postgres://env@db/y',
      ACTLINE_CLICKHOUSE_URL: 'http://ch:8123',
    })
    expect(c.server.port).toBe(6000)
    expect(c.exporters.postgres.url).toBe('postgres://env@db/y')
    expect(c.exporters.clickhouse.url).toBe('http://ch:8123')
  })

  it('says which environment variable held a bad value, without echoing a password', () => {
    const err = errorOf(() => parseConfig({}, { ACTLINE_POSTGRES_URL: 'mysql://u:hunter2@db/x' }))
    expect(err.message).toContain('(from ACTLINE_POSTGRES_URL)')
    expect(err.message).not.toContain('hunter2')
  })

  it('reports unreadable files and bad YAML plainly', () => {
    expect(errorOf(() => loadConfig(join(dir.path, 'missing.yaml'))).message).toMatch(/cannot read config file .*ENOENT/)
    expect(errorOf(() => loadConfig(file('bad.yaml', 'server: [1, 2\n'))).message).toMatch(/not valid YAML/)
  })
})

describe('actline validate-config', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, ['bin/actline.js', ...args], { encoding: 'utf8' })

  it('exits 0 for a valid file', () => {
    const r = run('validate-config', file('good.yaml', 'server:\n  port: 4400\npipeline:\n  batch:\n    send_batch_size: 5000\n'))
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/ok/)
  })

  it('exits 1 and prints the error with its key path for an invalid file', () => {
    const r = run('validate-config', file('invalid.yaml', 'pipeline:\n  batch:\n    send_batch_size: 0\n'))
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('`pipeline.batch.send_batch_size`')
  })

  it('exits 2 with usage for an unknown command', () => {
    const r = run('frobnicate')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/usage/)
  })
})

describe('docs/configuration.md', () => {
  it('documents every config key and every environment override', async () => {
    const { readFileSync } = await import('node:fs')
    const { ENV_OVERRIDES } = await import('../../collector/config.ts')
    const doc = readFileSync('docs/configuration.md', 'utf8')
    const keys: string[] = []
    const walk = (value: unknown, path: string[]) => {
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        for (const [k, v] of Object.entries(value)) walk(v, [...path, k])
      } else keys.push(path.join('.'))
    }
    walk(parseConfig({}), [])
    const missing = keys.filter((k) => !doc.includes(`\`${k}\``))
    expect(missing).toEqual([])
    expect(Object.keys(ENV_OVERRIDES).filter((name) => !doc.includes(`\`${name}\``))).toEqual([])
  })
})
