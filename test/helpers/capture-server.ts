/**
 * A real HTTP server standing in for the collector's /v1/activities where a
 * test needs to choose the replies (429, 503, a slow answer) or count the
 * requests. It decodes what it receives exactly as the collector would.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'

export interface Reply {
  status: number
  headers?: Record<string, string>
  body?: unknown
}

export interface CaptureServer {
  url: string
  port: number
  /** Every activity received in a request that was answered 2xx, in order. */
  accepted: Record<string, any>[]
  /** Every request, whatever its reply. */
  requests: { url: string; headers: IncomingMessage['headers']; items: Record<string, any>[] }[]
  /** Replies to use next, in order (push onto it); 200 once they run out. */
  script: Reply[]
  close(): Promise<void>
}

export async function startCaptureServer(port = 0): Promise<CaptureServer> {
  const capture = { accepted: [] as CaptureServer['accepted'], requests: [] as CaptureServer['requests'], script: [] as Reply[] }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let body = Buffer.concat(chunks)
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
      // A JSON array (what the SDK's client sends), one object, or NDJSON.
      const text = body.toString()
      const items = (req.headers['content-type']?.startsWith('application/json')
        ? [JSON.parse(text)].flat()
        : text.split('\n').filter(Boolean).map((l) => JSON.parse(l))) as Record<string, any>[]
      capture.requests.push({ url: req.url ?? '', headers: req.headers, items })
      const reply = capture.script.shift() ?? { status: 200 }
      if (reply.status < 300) capture.accepted.push(...items)
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers })
      res.end(JSON.stringify(reply.body ?? { accepted: items.length, rejected: 0, errors: [] }))
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const actual = (server.address() as AddressInfo).port
  return {
    ...capture,
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}
