/**
 * The register hook's direct hooks (instrumentation/hooks) in a real app
 * shape: a node:http server whose handlers use a real pg client against a
 * real PostgreSQL (PGlite over pglite-socket, and the server at PG_URL when
 * set), shipping to a real HTTP server standing in for the collector. What a
 * user checks: reads cost no activity work, the request's activity names who
 * the handler said and the path it served, and no value an app writes can
 * crash it, block it or produce an activity the collector would refuse.
 */
import http from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ActivityClient, hookStats, installHooks, setActivityContext, withActivityContext } from '../../instrumentation/index.ts'
import { LIMITS, parseActivity } from '../../schemas/activity.ts'
import { startCaptureServer, type CaptureServer } from '../helpers/capture-server.ts'
import { createScratchDatabase, eventually, PG_URL, tempDir, type PgMode } from '../helpers/stores.ts'

const modes: PgMode[] = PG_URL ? ['embedded', 'server'] : ['embedded']

let capture: CaptureServer
let client: ActivityClient
beforeAll(async () => {
  capture = await startCaptureServer()
  client = new ActivityClient({ endpoint: capture.url, flushIntervalMs: 20 })
  // With tagging: its wrapper sits on top of the hook's, the case where pg required again must not wrap either twice.
  installHooks({ client, tagTransactions: true })
  // The app requires pg again after the hooks are in (a CommonJS module, another path): the patches see it and leave it as it is.
  createRequire(import.meta.url)('pg')
})
afterAll(async () => {
  await client.shutdown(2000)
  await capture.close()
})

describe.each(modes)('the register hook on %s PostgreSQL', (mode) => {
  const dir = tempDir()
  let db: pg.Client
  let stop: () => Promise<void>
  let server: http.Server
  let base: string
  const routes = new Map<string, (req: http.IncomingMessage) => Promise<unknown>>()

  beforeAll(async () => {
    let url: string
    if (mode === 'server') {
      const scratch = await createScratchDatabase()
      url = scratch.url
      stop = scratch.drop
    } else {
      const lite = await PGlite.create(`${dir.path}/db`)
      const socket = new PGLiteSocketServer({ db: lite, host: '127.0.0.1', port: 0 })
      await socket.start()
      url = `postgres://postgres@${socket.getServerConn()}/postgres`
      stop = async () => { await socket.stop(); await lite.close() }
    }
    db = new pg.Client({ connectionString: url })
    await db.connect()
    await db.query('CREATE TABLE things (id serial PRIMARY KEY, name text, doc jsonb, blob bytea)')
    server = http.createServer((req, res) => {
      const route = routes.get(`${req.method} ${req.url!.split('?')[0]!.replace(/\/\d+$/, '/:n')}`)
      if (!route) return void res.writeHead(404).end()
      route(req).then(
        (body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
        (err: Error) => res.writeHead(500).end(err.message),
      )
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }, 120_000)

  afterAll(async () => {
    server?.close()
    await db?.end()
    await stop?.()
    dir.remove()
  })

  /** The activities the hooks shipped for one request, once its own `api.*` one has arrived. */
  async function shipped(path: string, send: () => Promise<Response>): Promise<Record<string, any>[]> {
    const from = capture.accepted.length
    const res = await send()
    expect(res.status).toBe(200)
    let mine: Record<string, any>[] = []
    await eventually(`the request's activity for ${path}`, async () => {
      await client.forceFlush()
      const api = capture.accepted.slice(from).find((a) => a.attributes?.['url.path'] === path)
      if (!api) return false
      mine = capture.accepted.slice(from).filter((a) => a.trace_id === api.trace_id)
      return true
    })
    return mine
  }

  it('does no work for reads, BEGIN, set_config or COMMIT: a read-only request is its own activity and nothing else', async () => {
    routes.set('GET /report', async () => {
      await db.query('BEGIN READ ONLY')
      await db.query(`SELECT set_config('app.user', $1, true)`, ['u-1'])
      for (let i = 0; i < 50; i++) await db.query('SELECT count(*) FROM things WHERE id > $1', [i])
      await db.query('WITH t AS (SELECT 1) SELECT * FROM t')
      await db.query('COMMIT')
      return { ok: true }
    })
    const before = hookStats()!
    const activities = await shipped('/report', () => fetch(`${base}/report?token=secret`))
    const after = hookStats()!
    // 54 statements, one of them WITH (looked at, as a WITH may write): only that one is read.
    expect(after.statementsRead - before.statementsRead).toBe(1)
    expect(activities.map((a) => a.action)).toEqual(['api.get'])
    // The path without its query string: a token in a URL never reaches the trail.
    expect(activities[0]).toMatchObject({ entity_type: 'http_route', entity_id: '/report', category: 'api', status: 'success' })
    expect(JSON.stringify(activities[0])).not.toContain('secret')
  })

  it("names who the handler set, whenever it set them, on the request's activity and its writes, in one trace", async () => {
    routes.set('POST /things', async () => {
      // An auth step after an await, as a middleware would: nothing wraps the handler.
      await new Promise((r) => setTimeout(r, 1))
      setActivityContext({ actorId: 'u-7', tenantId: 't-1' })
      const { rows } = await db.query('INSERT INTO things (name) VALUES ($1) RETURNING id', ['lamp'])
      // A comment first, as query builders and tracing tags write them: still a write, as the server reads it.
      await withActivityContext({ correlationId: 'c-9' }, () => db.query('/* app: desk */ UPDATE things SET name = $1 WHERE id = $2', ['desk lamp', rows[0].id]))
      return rows[0]
    })
    const activities = await shipped('/things', () => fetch(`${base}/things`, { method: 'POST', headers: { traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` } }))
    const by = (action: string) => activities.find((a) => a.action === action)!
    // One activity a write: pg loaded twice, hooked once.
    expect(activities.map((a) => a.action).sort()).toEqual(['api.post', 'db.insert', 'db.update'])
    expect(by('api.post')).toMatchObject({ actor_id: 'u-7', tenant_id: 't-1', correlation_id: 'c-9', source: 'user' })
    expect(by('db.insert')).toMatchObject({ actor_id: 'u-7', tenant_id: 't-1', entity_type: 'things', details: { new: { name: 'lamp' } } })
    expect(by('db.update')).toMatchObject({ actor_id: 'u-7', correlation_id: 'c-9', entity_id: by('db.insert').entity_id, details: { new: { name: 'desk lamp' } } })
    // The caller's trace, from its traceparent header.
    for (const a of activities) expect(a.trace_id).toBe('ab'.repeat(16))
  })

  it('bounds and cleans hostile values in the app: every activity is one the collector accepts, and the app answers', async () => {
    const huge = 'x'.repeat(10 * 1024 * 1024)
    let deep: unknown = 'bottom'
    for (let i = 0; i < 40; i++) deep = { d: deep }
    routes.set('POST /hostile', async () => {
      const out: string[] = []
      const write = async (name: unknown, doc: unknown = null, blob: unknown = null) => {
        try {
          await db.query('INSERT INTO things (name, doc, blob) VALUES ($1, $2, $3)', [name, doc, blob])
          out.push('ok')
        } catch (err) {
          out.push((err as Error).message)
        }
      }
      await write(huge)
      await write('lone \ud800 surrogate')
      await write('nul \u0000 inside') // PostgreSQL refuses it: the write's activity is a failure, still storable
      await write('bytes', null, Buffer.alloc(4096, 7))
      await write('deep', deep)
      await write('big json', { list: Array.from({ length: 20_000 }, (_, i) => ({ i, s: 'v'.repeat(20) })) })
      await write('surrogate in json', { s: 'a\udc00b' })
      return out
    })
    const t0 = performance.now()
    const activities = await shipped('/hostile', () => fetch(`${base}/hostile`, { method: 'POST' }))
    expect(performance.now() - t0).toBeLessThan(30_000)
    const writes = activities.filter((a) => a.action === 'db.insert')
    expect(writes).toHaveLength(7)
    for (const a of activities) {
      const parsed = parseActivity(a)
      expect(parsed.ok, JSON.stringify(parsed.ok ? '' : parsed.issues)).toBe(true)
      expect(JSON.stringify(a.details ?? '').length).toBeLessThanOrEqual(LIMITS.details)
    }
    const text = JSON.stringify(writes)
    expect(text.length).toBeLessThan(100_000)
    expect(text).toContain(`(${huge.length} characters)`)
    expect(text).toContain('lone \ufffd surrogate')
    expect(writes.some((w) => w.status === 'failure' && w.details?.new?.name === 'nul \\u0000 inside')).toBe(true)
    expect(text).toContain('[4096 bytes]')
    expect(text).toContain('a JSON value the stores cannot hold')
  })
})
