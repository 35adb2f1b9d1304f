/**
 * The real `actline start` against a store that is not there: a real closed
 * port. It must fail fast with a message naming the store, and never print
 * the password from the URL.
 */
import { spawn } from 'node:child_process'
import { closedPort } from '../helpers/ports.ts'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/stores.ts'

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
  it('exits 1 quickly, names PostgreSQL and the refused address, and never prints the password', async () => {
    const port = await closedPort()
    const { code, output, ms } = await run({
      ACTLINE_DATA_DIR: dir.path,
      ACTLINE_PORT: '0',
      ACTLINE_POSTGRES_URL: `postgres://actline:s3cret-pw@127.0.0.1:${port}/audit`,
    })
    expect(code).toBe(1)
    expect(ms).toBeLessThan(30_000)
    expect(output).toContain('collector failed to start')
    expect(output).toContain(`ECONNREFUSED 127.0.0.1:${port}`)
    expect(output).toContain(`postgres://actline:***@127.0.0.1:${port}/audit`)
    expect(output).not.toContain('s3cret-pw')
  })

  it('refuses a config error before touching any store, exit 1 with the key', async () => {
    const { code, output } = await run({ ACTLINE_DATA_DIR: dir.path, ACTLINE_PORT: 'eighty' })
    expect(code).toBe(1)
    expect(output).toContain('`server.port`')
    expect(output).toContain('(from ACTLINE_PORT)')
  })
})
