/**
 * Versioned schema migrations, applied at start. Each store records what it
 * applied in its own `actline_migrations` table, so a restart (or a second
 * collector) applies only what is missing; every statement is also written to
 * be idempotent, because ClickHouse has no transactional DDL to roll back a
 * migration that failed half way.
 */
import type { Logger } from './component.ts'

/**
 * One statement of a migration. A long one (a backfill) carries a progress
 * label, which the runner logs before it starts. A step that must compute
 * in the collector (hashing existing rows) is a `run` instead, given the
 * migration's own connection and a progress callback; only stores whose
 * target says so take one (PostgreSQL's).
 */
export type Statement = string | { sql: string; progress: string } | Step

export interface Step {
  progress: string
  run(db: MigrationDb, progress: (message: string) => void): Promise<void>
}

/** The connection a step runs on, inside the migration's transaction. */
export interface MigrationDb {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[]; rowCount: number | null }>
}

export function isStep(s: Statement): s is Step {
  return typeof s !== 'string' && 'run' in s
}

export function sqlOf(s: Statement): string {
  if (isStep(s)) throw new Error(`migration step '${s.progress}' runs code, not SQL: this store's target cannot take it`)
  return typeof s === 'string' ? s : s.sql
}

export interface Migration<Options> {
  version: number
  name: string
  statements(options: Options): Statement[]
}

/** What a store must offer the runner: recording is store-specific, ordering is not. */
export interface MigrationTarget {
  appliedVersions(): Promise<Set<number>>
  apply(migration: { version: number; name: string }, statements: Statement[]): Promise<void>
}

export interface MigrationProgress {
  (event: { version: number; name: string; index: number; total: number }): void
}

/** Progress as log lines: "postgres: applying migration 2/3: create rollups". */
export function logMigrations(store: string, logger: Logger): MigrationProgress {
  return (p) => logger.info(p, `${store}: applying migration ${p.index}/${p.total}: ${p.name}`)
}

/** Apply every migration not yet recorded, in version order. Returns the versions applied now. */
export async function migrate<O>(
  target: MigrationTarget,
  migrations: readonly Migration<O>[],
  options: O,
  onProgress?: MigrationProgress,
): Promise<number[]> {
  assertOrdered(migrations)
  const applied = await target.appliedVersions()
  const pending = migrations.filter((m) => !applied.has(m.version))
  for (const [index, m] of pending.entries()) {
    onProgress?.({ version: m.version, name: m.name, index: index + 1, total: pending.length })
    await target.apply(m, m.statements(options))
  }
  return pending.map((m) => m.version)
}

function assertOrdered(migrations: readonly Migration<unknown>[]): void {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version <= migrations[i - 1]!.version) {
      throw new Error(`migrations must have strictly increasing versions (got ${migrations[i - 1]!.version} then ${migrations[i]!.version})`)
    }
  }
}
