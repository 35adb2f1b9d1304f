/** A database of its own on the PostgreSQL server for one benchmark run, dropped after. */
import pg from 'pg'

export async function scratchDatabase(server: string, prefix: string): Promise<{ url: string; version: string; drop(): Promise<void> }> {
  const name = `${prefix}_${process.pid}`
  const admin = new pg.Client({ connectionString: server })
  await admin.connect()
  const version = (await admin.query('SHOW server_version')).rows[0].server_version as string
  await admin.query(`CREATE DATABASE ${name}`)
  const url = new URL(server)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    version,
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
      await admin.end()
    },
  }
}
