/**
 * PostgreSQL DDL: `audit_log`, the append-only audit trail. Monthly range
 * partitions on occurred_at keep indexes small and let retention detach a
 * month instead of deleting rows.
 */
import { quoteIdent } from '../lib/sql.ts'
import type { Migration } from './migrations.ts'
import { chainExistingRows } from './audit-chain-migration.ts'
import { HEADS_TABLE, RETENTION_ACTION } from './audit-chain-store.ts'

/** The chain's columns, which the guard lets a row without a hash gain once (audit-chain-migration.ts). */
const CHAIN_COLUMNS_ARRAY = `ARRAY['chain', 'chain_seq', 'prev_hash', 'row_hash']`

export const MIGRATIONS_TABLE = 'actline_migrations'

/**
 * The search_path every actline session sets: the built-ins first, then
 * actline's schema, the session's own temporary schema last. pg_catalog is
 * named first on purpose: left out, PostgreSQL would still search it first,
 * but a role's `SET search_path = shadow, pg_catalog` would not be undone.
 */
export const sessionSearchPath = (schema: string) => `SET search_path = pg_catalog, ${quoteIdent(schema)}, pg_temp`

export const postgresMigrations: readonly Migration<Record<string, never>>[] = [
  {
    version: 1,
    name: 'create audit_log',
    statements: () => [
      `CREATE TABLE IF NOT EXISTS audit_log (
  id             uuid        NOT NULL,
  occurred_at    timestamptz NOT NULL,
  received_at    timestamptz NOT NULL,
  source         text        NOT NULL,
  action         text        NOT NULL,
  category       text        NOT NULL,
  severity       text        NOT NULL,
  status         text        NOT NULL,
  entity_type    text,
  entity_id      text,
  actor_id       text,
  tenant_id      text,
  service        text,
  trace_id       text,
  span_id        text,
  correlation_id text,
  duration_ms    double precision,
  details        jsonb,
  ip             inet,
  user_agent     text,
  attributes     jsonb       NOT NULL DEFAULT '{}'::jsonb,
  -- The partition key must be part of every unique constraint on a
  -- partitioned table; id alone is unique in practice (UUIDv7).
  PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at)`,
      // The three questions an auditor asks: who did it, what happened to
      // this thing, what happened in this window.
      `CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON audit_log (actor_id, occurred_at DESC)`,
      `CREATE INDEX IF NOT EXISTS audit_log_entity_idx ON audit_log (entity_type, entity_id, occurred_at DESC)`,
      `CREATE INDEX IF NOT EXISTS audit_log_time_idx ON audit_log (occurred_at DESC)`,
    ],
  },
  {
    version: 2,
    name: 'audit_log refuses UPDATE, DELETE and TRUNCATE',
    // An audit trail the application's own login can edit is no trail: the
    // guard raises on every UPDATE and DELETE (a row trigger, cloned to each
    // partition) and on TRUNCATE. Retention drops whole monthly partitions
    // (DROP TABLE of a partition is not a DELETE). A superuser can still
    // drop the trigger: docs/audit-integrity.md, "Append-only".
    statements: () => [
      `CREATE OR REPLACE FUNCTION actline_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'rows leave the audit trail only by retention, which drops whole monthly partitions (docs/audit-integrity.md)';
END
$$`,
      `DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log`,
      `CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION actline_audit_log_append_only()`,
      `DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log`,
      `CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION actline_audit_log_append_only()`,
    ],
  },
  {
    version: 3,
    name: 'audit_log hash chain',
    // docs/audit-integrity.md. The heads table is where writers serialize
    // per chain (SELECT ... FOR UPDATE) and what verify compares a chain's
    // end with. (chain, chain_seq) cannot be a unique index: a partitioned
    // table's unique index must hold the partition key; verify finds a
    // sequence number used twice instead.
    statements: () => [
      `ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS chain text, ADD COLUMN IF NOT EXISTS chain_seq bigint, ADD COLUMN IF NOT EXISTS prev_hash bytea, ADD COLUMN IF NOT EXISTS row_hash bytea`,
      `CREATE TABLE IF NOT EXISTS ${HEADS_TABLE} (chain text PRIMARY KEY, seq bigint NOT NULL, hash bytea NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
      `CREATE INDEX IF NOT EXISTS audit_log_chain_idx ON audit_log (chain, chain_seq)`,
      // Empty once chained; verify counts rows someone inserted without a chain through it.
      `CREATE INDEX IF NOT EXISTS audit_log_unchained_idx ON audit_log (occurred_at) WHERE row_hash IS NULL`,
      // The few retention events verify reads before a chain (audit-chain-store.ts, chainCuts).
      `CREATE INDEX IF NOT EXISTS audit_log_retention_idx ON audit_log (chain) WHERE action = '${RETENTION_ACTION}'`,
      `CREATE OR REPLACE FUNCTION actline_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD.row_hash IS NULL AND NEW.row_hash IS NOT NULL AND current_setting('actline.chaining', true) = 'on'
       AND (to_jsonb(NEW) - ${CHAIN_COLUMNS_ARRAY}) = (to_jsonb(OLD) - ${CHAIN_COLUMNS_ARRAY}) THEN
      RETURN NEW;
    END IF;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: % is refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'rows leave the audit trail only by retention, which drops whole monthly partitions (docs/audit-integrity.md)';
END
$$`,
      chainExistingRows,
    ],
  },
  {
    version: 4,
    name: 'the audit writer role',
    // Where the migrating login may manage roles (a superuser, or CREATEROLE),
    // a NOLOGIN role with what writing the trail needs and no more: a DBA
    // grants it to the collector's own login, which then cannot UPDATE or
    // DELETE audit_log whatever happens to the guard. Elsewhere nothing is
    // done and a DBA makes it (docs/audit-integrity.md, "A writer role").
    // Grants on the partitioned parent cover its partitions, present and future.
    statements: () => [
      `DO $$
BEGIN
  IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
    RAISE NOTICE 'actline: this login may not create roles; the audit writer role is left to a DBA';
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${WRITER_ROLE}') THEN
    CREATE ROLE ${WRITER_ROLE} NOLOGIN;
  END IF;
  GRANT SELECT, INSERT ON audit_log TO ${WRITER_ROLE};
  GRANT SELECT, INSERT, UPDATE ON ${HEADS_TABLE} TO ${WRITER_ROLE};
  GRANT SELECT ON ${MIGRATIONS_TABLE} TO ${WRITER_ROLE};
END
$$`,
    ],
  },
]

/** The role migration 4 makes: SELECT and INSERT on audit_log, the heads to move; no UPDATE, no DELETE. */
export const WRITER_ROLE = 'actline_audit_writer'

/** First instant of the month holding `ms`, in UTC. */
export function monthStart(ms: number): Date {
  const d = new Date(ms)
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1))
}

/** DDL for the monthly partition holding `ms`; idempotent. */
export function partitionDdl(ms: number, schema = 'public'): { name: string; sql: string } {
  const from = monthStart(ms)
  const to = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + 1, 1))
  const name = `audit_log_y${from.getUTCFullYear()}m${String(from.getUTCMonth() + 1).padStart(2, '0')}`
  return {
    name,
    sql: `CREATE TABLE IF NOT EXISTS ${quoteIdent(schema)}.${name} PARTITION OF ${quoteIdent(schema)}.audit_log FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`,
  }
}
