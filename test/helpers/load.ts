/**
 * Load for the crash tests: NDJSON batches of events with client-chosen ids
 * posted over keep-alive connections until stopped, collecting the ids of
 * every batch answered 200 (what was acknowledged, so what must be stored).
 */
import http from 'node:http'
import { uuidv7 } from '../../schemas/activity.ts'

export interface LoadOptions {
  connections: number
  /** Events per request. */
  perRequest: number
  /** The i-th event of a request, given its id. */
  event(id: string, i: number): Record<string, unknown>
  /** Pause after an acknowledged request; after any other answer it is 20 ms. @default 0 */
  pauseMs?: number
}

/** Starts the load; the returned function stops it once the requests in flight have been answered. */
export function postLoad(url: string, acked: Set<string>, o: LoadOptions): () => Promise<void> {
  let stop = false
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections })
  const post = (body: string) =>
    new Promise<number>((resolve) => {
      const req = http.request(`${url}/v1/activities`, { method: 'POST', agent, headers: { 'content-type': 'application/x-ndjson' } }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
        res.on('error', () => resolve(0))
      })
      req.on('error', () => resolve(0))
      req.end(body)
    })
  const workers = Array.from({ length: o.connections }, async () => {
    while (!stop) {
      const ids = Array.from({ length: o.perRequest }, () => uuidv7())
      const status = await post(ids.map((id, i) => JSON.stringify(o.event(id, i))).join('\n'))
      if (status === 200) for (const id of ids) acked.add(id)
      const pause = status === 200 ? (o.pauseMs ?? 0) : 20
      if (pause > 0) await new Promise((r) => setTimeout(r, pause))
    }
  })
  return async () => {
    stop = true
    await Promise.all(workers)
    agent.destroy()
  }
}
