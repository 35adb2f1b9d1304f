/**
 * ClickHouse DDL: the raw `activities` table. Rollups (issue: query API) are
 * later migrations in this same list.
 */
import type { Migration } from './migrations.ts'

export interface ClickHouseSchemaOptions {
  /**
   * Every name is qualified with it: the embedded engine ignores a client's
   * default database, so unqualified DDL would land in `default` there.
   */
  database: string
  /** Days to keep raw rows; 0 keeps them forever. */
  ttlDays: number
}

export const MIGRATIONS_TABLE = 'actline_migrations'

/** The TTL expression, spelled as ClickHouse prints it back in system.tables, so config and table compare exactly. */
export function ttlClause(ttlDays: number): string {
  return ttlDays > 0 ? `toDateTime(timestamp) + toIntervalDay(${ttlDays})` : ''
}

export const clickhouseMigrations: readonly Migration<ClickHouseSchemaOptions>[] = [
  {
    version: 1,
    name: 'create activities',
    statements: ({ database, ttlDays }) => [
      `CREATE TABLE IF NOT EXISTS ${database}.activities
(
    id             UUID,
    timestamp      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at    DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    source         LowCardinality(String),
    action         LowCardinality(String),
    category       LowCardinality(String),
    severity       LowCardinality(String),
    status         LowCardinality(String),
    entity_type    LowCardinality(String),
    entity_id      String,
    actor_id       String,
    tenant_id      LowCardinality(String),
    service        LowCardinality(String),
    trace_id       String,
    span_id        String,
    correlation_id String,
    duration_ms    Nullable(Float64),
    details        String CODEC(ZSTD(3)),
    ip             Nullable(IPv6),
    user_agent     String CODEC(ZSTD(3)),
    attributes     Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    -- Point lookups by a high-cardinality id ("everything actor u42 did")
    -- cannot use the sort key; bloom filters let them skip most granules.
    INDEX idx_entity_id entity_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_actor_id  actor_id  TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_trace_id  trace_id  TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
-- Monthly partitions: TTL drops whole months, and a year is 12 partitions,
-- well under the few hundred ClickHouse is comfortable with.
PARTITION BY toYYYYMM(timestamp)
-- Nearly every query is a time range, most also filter by source or action.
-- The hour bucket leads so a range prunes to its hours; inside an hour rows
-- cluster by source then action, so those filters skip granules too; the
-- exact timestamp and id last give a stable newest-first order for keyset
-- pagination. A bare timestamp first would make source/action useless for
-- pruning; action first would scatter every time range across the table.
ORDER BY (toStartOfHour(timestamp), source, action, timestamp, id)
${ttlDays > 0 ? `TTL ${ttlClause(ttlDays)}` : ''}
-- Lets a retried insert with the same insert_deduplication_token be
-- dropped as a duplicate on a non-replicated table.
SETTINGS non_replicated_deduplication_window = 10000`,
    ],
  },
]
