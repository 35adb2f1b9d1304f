/**
 * A PostgreSQL server for tests that put something between it and the
 * collector (a proxy that is cut, a port that opens late): the real server
 * at PG_URL (a scratch database), else a PGlite served over TCP by this
 * process. The collector's own embedded PostgreSQL listens on nothing, so
 * it cannot stand in.
 */
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { createScratchDatabase, PG_URL } from './stores.ts'

export interface PostgresTarget {
  url: URL
  stop(): Promise<void>
}

/** The server at PG_URL when set (`kind` 'any'), else PGlite; or the one asked for. */
export async function startPostgresTarget(dataDir: string, kind: 'any' | 'pglite' | 'server' = 'any'): Promise<PostgresTarget> {
  if (kind === 'server' || (kind === 'any' && PG_URL)) {
    const scratch = await createScratchDatabase()
    return { url: new URL(scratch.url), stop: () => scratch.drop() }
  }
  const db = await PGlite.create(dataDir)
  // More than one client at a time (a test's own and a command's), queued at the query level.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 8 })
  await server.start()
  return {
    url: new URL(`postgres://postgres@${server.getServerConn()}/postgres`),
    async stop() {
      await server.stop()
      await db.close()
    },
  }
}
