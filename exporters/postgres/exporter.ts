/**
 * Exports audit-relevant activities to PostgreSQL's `audit_log`: to a server
 * when `url` is set, otherwise to the embedded PGlite, through `pg` either way.
 */
import pg from 'pg'
import type { PostgresExporterConfig } from './config.ts'
import type { Exporter, Logger, PostgresReader } from '../../schemas/component.ts'
import { MIGRATIONS_TABLE, monthStart, partitionDdl, postgresMigrations, sessionSearchPath } from '../../schemas/postgres-schema.ts'
import { quoteIdent } from '../../lib/sql.ts'
import { isStep, logMigrations, migrate, sqlOf, type MigrationTarget } from '../../schemas/migrations.ts'
import { probe, reportOutcome } from '../classify.ts'
import { classifyPostgres } from './classify.ts'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.ts'
import { redactUrl } from '../../lib/redact.ts'
import { copyInsert, copySupported } from './copy.ts'
import { jsonInsert } from './json-insert.ts'
import { inTransaction, withPooledClient } from './pooled.ts'

const PARTITION_CHECK_MS = 6 * 60 * 60 * 1000

export function createPostgresExporter(
  config: PostgresExporterConfig & { path: string },
  logger: Logger,
): Exporter & { pool(): pg.Pool; reader(): PostgresReader } {
  let pool: pg.Pool | undefined
  let embedded: EmbeddedPostgres | undefined
  let timer: NodeJS.Timeout | undefined
  let closed = false
  const partitions = new Set<string>()
  /** A server that takes COPY gets the batch that way (copy.ts); PGlite, and a server that does not, json_to_recordset. */
  let copy = false

  async function ensurePartitions(times: Iterable<number>): Promise<void> {
    const months = new Set<number>()
    for (const t of times) months.add(monthStart(t).getTime())
    for (const month of months) {
      const { name, sql } = partitionDdl(month, config.schema)
      if (partitions.has(name)) continue
      try {
        await started().query(sql)
      } catch (err) {
        // Another collector created it between our check and our CREATE.
        const code = (err as { code?: string }).code
        if (code !== '42P07' && code !== '23505') throw err
      }
      partitions.add(name)
    }
  }

  function monthsAhead(): number[] {
    const now = new Date()
    return Array.from({ length: config.partitions_ahead_months + 2 }, (_, i) =>
      Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i - 1, 1),
    )
  }

  function started(): pg.Pool {
    if (!pool) throw new Error('postgres exporter is not started')
    return pool
  }

  function reader(): PostgresReader {
    const p = started()
    // Through the same pool: the embedded server takes one connection at a
    // time, so reads queue behind (and between) export batches.
    return { rows: async <T>(sql: string, params: readonly unknown[] = []) => (await p.query(sql, params as unknown[])).rows as T[] }
  }

  return {
    name: 'postgres',

    pool: started,

    auditReader: reader,

    reader,

    async start() {
      if (pool) return
      closed = false
      let connection: pg.PoolConfig
      if (config.url) {
        logger.info({ target: redactUrl(config.url) }, 'postgres: connecting')
        connection = { connectionString: config.url, max: config.pool_size }
      } else {
        logger.info({ target: `embedded:${config.path}` }, 'postgres: starting embedded PGlite')
        embedded = await startEmbeddedPostgres(config.path, { sharedBuffers: config.embedded_shared_buffers, nice: config.embedded_nice })
        connection = { ...embedded.connection, max: 1 }
      }
      const opened = new pg.Pool({ ...connection, Client: pinnedClient(config.schema), statement_timeout: config.statement_timeout_ms, connectionTimeoutMillis: 10_000 })
      // An idle connection the server dropped must not crash the process;
      // the next query reconnects and a failed export is retried.
      opened.on('error', (err) => logger.warn({ err: err.message }, 'postgres: idle connection lost'))
      try {
        await migrate(postgresTarget(opened, logger, config.schema), postgresMigrations, {}, logMigrations('postgres', logger))
        const existing = await opened.query<{ name: string }>(
          `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass`,
        )
        for (const r of existing.rows) partitions.add(r.name)
        pool = opened
        await ensurePartitions(monthsAhead())
        copy = Boolean(config.url) && (await copySupported(opened))
        if (config.url) logger.info({ insert: copy ? 'copy' : 'json_to_recordset' }, copy ? 'postgres: batches go in by COPY' : 'postgres: the server does not take COPY FROM STDIN; batches go in by json_to_recordset')
      } catch (err) {
        // Nothing half-open stays behind: the next attempt starts over.
        pool = undefined
        await opened.end().catch(() => {})
        await embedded?.stop()
        embedded = undefined
        throw err
      }
      timer = setInterval(() => {
        ensurePartitions(monthsAhead()).catch((err) => logger.warn({ err: (err as Error).message }, 'postgres: could not create partitions ahead'))
      }, PARTITION_CHECK_MS).unref()
    },

    export(batch) {
      return reportOutcome(async () => {
        const p = started()
        await ensurePartitions(batch.map((a) => a.timestamp))
        await withPooledClient(p, (client) => (copy ? copyInsert(client, batch) : jsonInsert(client, batch)))
      }, classifyPostgres)
    },

    ping() {
      return probe(() => started().query('SELECT 1'))
    },

    async shutdown() {
      if (closed) return
      closed = true
      clearInterval(timer)
      await pool?.end()
      pool = undefined
      await embedded?.stop()
    },
  }
}

/**
 * A client whose session sets its search_path before the pool hands it out:
 * names resolve to the built-ins first, then actline's schema, never to a
 * schema that a role's or database's own search_path (ALTER ROLE/DATABASE
 * ... SET) would put first, so a shadowing sha256() or view there cannot
 * fool verify. A SET, not the startup packet's options: PGlite's socket
 * ignores those.
 */
function pinnedClient(schema: string): typeof pg.Client {
  const setup = sessionSearchPath(schema)
  class PinnedClient extends pg.Client {
    // pg-pool connects with a callback, others without: both wait for the SET.
    override connect(callback?: (...args: any[]) => void): any {
      const connected = super.connect().then(async () => {
        // Connected, but not yet the pool's: no one listens for this client's
        // 'error' events, and a connection cut during the SET emits one
        // beside rejecting it, which would be an uncaught exception. The
        // rejection reports it (the pool drops the client).
        const heard = () => {}
        this.on('error', heard)
        try {
          await this.query(setup)
        } finally {
          this.off('error', heard)
        }
      })
      if (!callback) return connected.then(() => this)
      connected.then(() => callback(null), callback)
      return undefined
    }
  }
  return PinnedClient as unknown as typeof pg.Client
}

function postgresTarget(pool: pg.Pool, logger: Logger, schema: string): MigrationTarget {
  return {
    async appliedVersions() {
      // Under the lock too: two concurrent CREATE TABLE IF NOT EXISTS can
      // still collide on the catalog's unique index.
      return withMigrationLock(pool, schema, async (client) => {
        // Created only when missing: even IF NOT EXISTS needs CREATE on the
        // schema, which a login holding just the writer role has not.
        const { rows: found } = await client.query<{ exists: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS exists`, [MIGRATIONS_TABLE])
        if (!found[0]!.exists) {
          await client.query(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
        }
        const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${MIGRATIONS_TABLE}`)
        return new Set(rows.map((r) => r.version))
      })
    },
    async apply(m, statements) {
      // A second collector starting at the same time waits here, then sees
      // the version recorded and skips it.
      await withMigrationLock(pool, schema, async (client) => {
        const done = await client.query(`SELECT 1 FROM ${MIGRATIONS_TABLE} WHERE version = $1`, [m.version])
        if (done.rowCount !== 0) return
        for (const statement of statements) {
          if (!isStep(statement)) await client.query(sqlOf(statement))
          else {
            logger.info({ version: m.version }, `postgres: ${statement.progress}`)
            await statement.run(client, (message) => logger.info({ version: m.version }, `postgres: ${message}`))
          }
        }
        await client.query(`INSERT INTO ${MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)`, [m.version, m.name])
      })
    },
  }
}

/** Run fn in a transaction holding the migrations advisory lock. */
function withMigrationLock<T>(pool: pg.Pool, schema: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withPooledClient(pool, (client) =>
    inTransaction(client, async () => {
      // Migrations create their tables and functions in actline's schema: first in the path for this transaction only.
      await client.query(`SET LOCAL search_path = ${quoteIdent(schema)}, pg_catalog, pg_temp`)
      await client.query(`SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('${MIGRATIONS_TABLE}'))`)
      return fn(client)
    }),
  )
}
