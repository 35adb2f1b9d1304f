/**
 * A real TCP proxy for fault tests: cut() drops every connection and
 * refuses new ones (the port is closed), restore() listens again on the
 * same port. The store behind it is untouched. With `cutWhen`, a
 * connection is also dropped, both sides, the moment its client sends a
 * chunk the predicate matches (a statement, say), before it is forwarded.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

export interface TcpProxy {
  port: number
  cut(): Promise<void>
  restore(): Promise<void>
  close(): Promise<void>
}

export async function startTcpProxy(targetHost: string, targetPort: number, listenPort = 0, cutWhen?: (chunk: Buffer) => boolean): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let server: Server | undefined
  let port = listenPort

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        const upstream = connect(targetPort, targetHost)
        for (const s of [client, upstream]) {
          sockets.add(s)
          s.on('close', () => sockets.delete(s))
          s.on('error', () => {})
        }
        if (cutWhen) {
          client.on('data', (chunk: Buffer) => {
            if (!cutWhen(chunk)) upstream.write(chunk)
            else for (const s of [client, upstream]) s.destroy()
          })
          upstream.pipe(client)
        } else client.pipe(upstream).pipe(client)
        client.on('close', () => upstream.destroy())
        upstream.on('close', () => client.destroy())
      })
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as { port: number }).port
        resolve()
      })
    })

  const stop = async () => {
    for (const s of sockets) s.destroy()
    sockets.clear()
    if (server) await new Promise((resolve) => server!.close(resolve))
    server = undefined
  }

  await listen()
  return {
    get port() {
      return port
    },
    cut: stop,
    restore: listen,
    close: stop,
  }
}
