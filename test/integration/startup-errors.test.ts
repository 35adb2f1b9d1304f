/**
 * The real `actline start` against a store that is not there: a real closed
 * port. It must start anyway (the log takes ingest), name the store and the
 * refused address in /readyz and its log, and never print the password
 * from the URL. A config error still stops it before anything starts.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { closedPort } from '../helpers/ports.ts'
import { afterAll, describe, expect, it } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import { eventually, post, tempDir } from '../helpers/stores.ts'
import { killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'

afterAll(killChildren)

const dir = tempDir()
afterAll(() => dir.remove())

function run(env: Record<string, string>): Promise<{ code: number | null; output: string; ms: number }> {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/actline.js', 'start'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (c) => (output += c))
    child.stderr.on('data', (c) => (output += c))
    child.once('exit', (code) => resolve({ code, output, ms: Date.now() - started }))
  })
}

describe('start with an unreachable store', () => {
  it('starts anyway, takes ingest, names PostgreSQL and the refused address in /readyz, and never prints the password', async () => {
    const port = await closedPort()
    const started = Date.now()
    const c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${dir.path}/down\nserver: { port: 0 }\n`), {
      ACTLINE_POSTGRES_URL: `postgres://actline:s3cret-pw@127.0.0.1:${port}/audit`,
    })
    try {
      expect(Date.now() - started).toBeLessThan(60_000)
      const ready = await fetch(`${c.url}/readyz`)
      expect(ready.status).toBe(503)
      const body = await ready.json()
      expect(body.details.stores.postgres).toContain(`ECONNREFUSED 127.0.0.1:${port}`)
      expect(body.details.stores.clickhouse).toBe('ok')
      expect(body.message).toMatch(/^postgres not connected/)

      const id = uuidv7()
      const res = await post(c.url, JSON.stringify({ id, action: 'user.login', source: 'user' }))
      expect(res.status).toBe(200)
      await eventually('in ClickHouse', async () => {
        const page = await (await fetch(`${c.url}/api/v1/activities?from=now-1h`)).json()
        return page.data.some((r: { id: string }) => r.id === id)
      })
      const metrics = await (await fetch(`${c.url}/metrics`)).text()
      expect(metrics).toContain('actline_exporter_up{exporter="postgres"} 0')
      expect(metrics).toContain('actline_exporter_up{exporter="clickhouse"} 1')
    } finally {
      c.child.kill('SIGTERM')
      await c.exited
    }
    expect(c.output()).toContain(`postgres://actline:***@127.0.0.1:${port}/audit`)
    expect(c.output()).toContain(`ECONNREFUSED 127.0.0.1:${port}`)
    expect(c.output()).not.toContain('s3cret-pw')
  })

  it('refuses a config error before touching any store, exit 1 with the key', async () => {
    const { code, output } = await run({ ACTLINE_DATA_DIR: dir.path, ACTLINE_PORT: 'eighty' })
    expect(code).toBe(1)
    expect(output).toContain('`server.port`')
    expect(output).toContain('(from ACTLINE_PORT)')
  })

  it('refuses a data_dir another live actline process runs on, naming it, before opening the log', async () => {
    const shared = `${dir.path}/shared`
    mkdirSync(shared, { recursive: true })
    // A live process that is not this one holds it (the test runner's parent stands in for a running collector).
    writeFileSync(`${shared}/actline.pid`, `${process.ppid}\n`)
    const { code, output } = await run({ ACTLINE_DATA_DIR: shared, ACTLINE_PORT: '0' })
    expect(code).toBe(1)
    expect(output).toContain(`another actline process (pid ${process.ppid}) runs on data_dir ${shared}: give each collector its own data_dir`)
    expect(existsSync(`${shared}/wal`)).toBe(false)
  })

  it('logs an exception nothing caught as a fatal JSON line and exits 1, acknowledged events kept', async () => {
    const c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${dir.path}/bug\nserver: { port: 0 }\n`), {
      NODE_OPTIONS: `--import ${join(import.meta.dirname, '../fixtures/throw-later.mjs')}`,
    })
    const id = uuidv7()
    expect((await post(c.url, JSON.stringify({ id, action: 'user.login', source: 'user' }))).status).toBe(200)
    c.child.kill('SIGUSR2')
    expect(await c.exited).toBe(1)
    const line = c.output().split('\n').find((l) => l.includes('uncaught exception'))
    expect(JSON.parse(line!)).toMatchObject({ level: 60, msg: expect.stringMatching(/^uncaught exception: exiting/), err: { message: 'a bug nothing catches' } })
    // Restarted, it goes on from its log: the acknowledged event is stored.
    const again = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${dir.path}/bug\nserver: { port: 0 }\n`))
    try {
      await eventually('the acknowledged event in ClickHouse', async () => {
        const page = await (await fetch(`${again.url}/api/v1/activities?from=now-1h`)).json()
        return page.data.some((r: { id: string }) => r.id === id)
      }, 30_000)
    } finally {
      again.child.kill('SIGTERM')
      await again.exited
    }
  })
})
