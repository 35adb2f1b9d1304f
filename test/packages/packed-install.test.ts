/**
 * The install path users take, tested as they take it: `npm pack` of the
 * collector and of the SDK, each installed from its tarball into a scratch
 * directory outside the repository (the collector with --omit=dev), the
 * collector started with `npx actline start`, an app of its own (node:http +
 * pg, ESM) run under `node --import @actline/instrumentation/register`
 * against it, and what the app did read back through the query API.
 *
 * Needs the npm registry (or npm's cache) for the tarballs' dependencies:
 * `npm run test:packages`, which CI runs; not part of `npm test`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createScratchDatabase, eventually, PG_URL } from '../helpers/stores.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'actline-packages-'))
const children: ChildProcess[] = []

const npm = (args: string[], cwd: string) => execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })

/** Bytes under a directory, as du counts them (apparent sizes). */
function size(dir: string): number {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += size(path)
    else if (entry.isFile()) total += statSync(path).size
  }
  return total
}

function start(command: string, args: string[], cwd: string, env: Record<string, string>): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  // Its own process group: npx runs actline as a child of its own, which a kill of npx alone would leave running.
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  children.push(child)
  let output = ''
  child.stderr!.on('data', (c) => (output += c))
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output += `${line}\n`
      const m = /"url":"(http:[^"]+)"/.exec(line)
      if (m) resolve({ child, url: m[1]!, output: () => output })
    })
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}:\n${output}`)))
  })
}

describe('installed from the packed tarballs', () => {
  let sdkTarball: string
  let collectorTarball: string
  let collector: { url: string }
  let databaseUrl: string
  let stopDb: () => Promise<void>

  beforeAll(async () => {
    sdkTarball = join(scratch, npm(['pack', '--workspace', '@actline/instrumentation', '--pack-destination', scratch], root).trim().split('\n').at(-1)!)
    collectorTarball = join(scratch, npm(['pack', '--pack-destination', scratch], root).trim().split('\n').at(-1)!)
    if (PG_URL) {
      const db = await createScratchDatabase()
      databaseUrl = db.url
      stopDb = db.drop
    } else {
      const lite = await PGlite.create(join(scratch, 'app-db'))
      const socket = new PGLiteSocketServer({ db: lite, host: '127.0.0.1', port: 0 })
      await socket.start()
      databaseUrl = `postgres://postgres@${socket.getServerConn()}/postgres`
      stopDb = async () => { await socket.stop(); await lite.close() }
    }
  }, 600_000)

  afterAll(async () => {
    for (const child of children) {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    await stopDb?.()
    rmSync(scratch, { recursive: true, force: true })
  })

  it('the collector installs with --omit=dev, builds nothing, and starts, takes and serves activities', async () => {
    const dir = join(scratch, 'collector')
    npm(['init', '-y'], (execFileSync('mkdir', ['-p', dir]), dir))
    npm(['install', '--omit=dev', collectorTarball], dir)
    // No compiler came with it: what runs is what was packed.
    expect(() => execFileSync('node', ['-e', "require.resolve('typescript')"], { cwd: dir, stdio: 'ignore' })).toThrow()
    writeFileSync(join(dir, 'collector.yaml'), `data_dir: ${join(dir, 'data')}\nserver: { port: 0 }\n`)
    const t0 = performance.now()
    const started = await start('npx', ['actline', 'start', '--config', 'collector.yaml'], dir, {})
    collector = started
    const seconds = (performance.now() - t0) / 1000
    console.log(`packed collector: listening ${seconds.toFixed(1)} s after npx actline start`)
    expect(seconds).toBeLessThan(60)
    const posted = await fetch(`${collector.url}/v1/activities`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'user.login', source: 'user', actor_id: 'u-packed' }) })
    expect(posted.status).toBe(200)
    await eventually('the activity read back', async () => {
      const body = (await (await fetch(`${collector.url}/api/v1/activities?actor=u-packed`)).json()) as { data: { action: string }[] }
      return body.data?.[0]?.action === 'user.login'
    }, 30_000)
    // The web monitor ships built.
    const page = await fetch(`${collector.url}/`)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('<script')
  }, 600_000)

  it('the SDK installs small, with no storage engine, and an app under its register hook reaches the collector', async () => {
    const app = join(scratch, 'app')
    execFileSync('mkdir', ['-p', app])
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true, type: 'module' }))
    npm(['install', sdkTarball], app)
    const installed = size(join(app, 'node_modules'))
    const packages = readdirSync(join(app, 'node_modules'), { recursive: true }).filter((p) => String(p).endsWith('package.json')).length
    console.log(`@actline/instrumentation installed: ${(installed / 1e6).toFixed(2)} MB in node_modules (${packages} package.json files)`)
    expect(installed).toBeLessThan(10 * 1024 * 1024)
    for (const engine of ['chdb', '@electric-sql', 'zod', 'fastify']) expect(readdirSync(join(app, 'node_modules'))).not.toContain(engine)
    npm(['install', 'pg@8'], app)
    writeFileSync(join(app, 'app.mjs'), `
import http from 'node:http'
import pg from 'pg'
import { withActivityContext, logUserAction } from '@actline/instrumentation'
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
await pool.query('CREATE TABLE IF NOT EXISTS widgets (id serial PRIMARY KEY, name text)')
const server = http.createServer((req, res) => withActivityContext({ actorId: 'u-app' }, async () => {
  const { rows } = await pool.query('INSERT INTO widgets (name) VALUES ($1) RETURNING id', ['gear'])
  logUserAction('widget.made', { entityType: 'widget', entityId: rows[0].id })
  res.writeHead(201).end(JSON.stringify(rows[0]))
}))
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ url: 'http://127.0.0.1:' + server.address().port })))
`)
    const service = `packed-app-${Date.now().toString(36)}`
    const { url } = await start('node', ['--import', '@actline/instrumentation/register', 'app.mjs'], app, { DATABASE_URL: databaseUrl, ACTLINE_ENDPOINT: collector.url, OTEL_SERVICE_NAME: service })
    expect((await fetch(`${url}/widgets?x=1`, { method: 'POST' })).status).toBe(201)
    let rows: { action: string; actor_id: string; entity_type: string; entity_id: string }[] = []
    await eventually('the app\'s three activities in the collector', async () => {
      rows = ((await (await fetch(`${collector.url}/api/v1/activities?service=${service}`)).json()) as { data: typeof rows }).data
      return rows.length >= 3
    }, 30_000)
    expect(rows.map((r) => r.action).sort()).toEqual(['api.post', 'db.insert', 'widget.made'])
    for (const r of rows) expect(r.actor_id).toBe('u-app')
    expect(rows.find((r) => r.action === 'db.insert')).toMatchObject({ entity_type: 'widgets' })
    expect(rows.find((r) => r.action === 'api.post')).toMatchObject({ entity_id: '/widgets' })
  }, 300_000)
})
