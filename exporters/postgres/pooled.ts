/**
 * A connection of the pool for several statements in a row. node-postgres
 * reports a checked-out client's connection error (the server gone between
 * two statements) as an 'error' event, and an unheard 'error' event is an
 * uncaught exception: under a real TCP cut of the PostgreSQL server it
 * once ended a test process. Here it is heard; the statement in flight, or
 * the next one, rejects as before. A connection that failed in any way is
 * closed rather than handed out again (a COPY may have left it
 * mid-protocol).
 */
import type pg from 'pg'

export async function withPooledClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let failed: Error | undefined
  const onError = (err: Error) => void (failed ??= err)
  client.on('error', onError)
  try {
    return await fn(client)
  } catch (err) {
    failed ??= err as Error
    throw err
  } finally {
    client.off('error', onError)
    client.release(failed)
  }
}

/** fn inside BEGIN ... COMMIT on `client`; rolled back when it throws. */
export async function inTransaction<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  try {
    await client.query('BEGIN')
    const result = await fn()
    await client.query('COMMIT')
    return result
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  }
}
