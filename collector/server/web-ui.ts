/**
 * The activity monitor at `/`: the static files `npm run build:web` wrote to
 * dist/web (dashboards/web), held in memory with their gzip, so serving them
 * costs no disk read and no compression per request. They are public (the
 * data behind them needs a key); the page may talk to this origin only.
 */
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { extname, join, relative, resolve, sep } from 'node:path'
import { gzipSync } from 'node:zlib'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
}

/**
 * Nothing leaves the collector's origin: scripts, styles, data and images
 * are its own (uPlot sets inline style attributes, hence 'unsafe-inline' for
 * styles only).
 */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

interface Asset {
  body: Buffer
  gzip: Buffer | null
  type: string
  etag: string
  /** Hashed names never change content: cache them for good; the page itself always revalidates. */
  immutable: boolean
}

/** Where the build put the monitor: beside this module in dist/, or dist/web from the sources. */
export function webRoot(): string {
  const here = import.meta.dirname
  return here.split(sep).includes('dist') ? resolve(here, '../../web') : resolve(here, '../../dist/web')
}

function load(root: string): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) walk(path)
      else {
        const body = readFileSync(path)
        const type = TYPES[extname(name)] ?? 'application/octet-stream'
        const compressible = /text|svg|javascript/.test(type) && body.length > 512
        assets.set(`/${relative(root, path).split(sep).join('/')}`, {
          body,
          gzip: compressible ? gzipSync(body, { level: 9 }) : null,
          type,
          etag: `"${createHash('sha1').update(body).digest('base64url')}"`,
          immutable: path.includes(`${sep}assets${sep}`),
        })
      }
    }
  }
  walk(root)
  return assets
}

export const webUi = fp<{ root?: string }>(async (app, opts) => {
  const root = opts.root ?? webRoot()
  const built = existsSync(join(root, 'index.html'))
  const assets = built ? load(root) : new Map<string, Asset>()
  if (!built) app.log.warn({ root }, 'the web monitor is not built (npm run build): / answers 503')

  const send = (request: FastifyRequest, reply: FastifyReply, asset: Asset) => {
    reply
      .header('content-type', asset.type)
      .header('etag', asset.etag)
      .header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('vary', 'accept-encoding')
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send()
    if (asset.gzip && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').send(asset.gzip)
    return reply.send(asset.body)
  }

  app.get('/', async (request, reply) => {
    const page = assets.get('/index.html')
    if (!page) return reply.code(503).type('text/plain; charset=utf-8').send('The web monitor is not built: run `npm run build` (npm install does it), then restart.\n')
    return send(request, reply, page)
  })
  for (const [path, asset] of assets) {
    if (path === '/index.html') continue
    app.get(path, async (request, reply) => send(request, reply, asset))
  }
})
