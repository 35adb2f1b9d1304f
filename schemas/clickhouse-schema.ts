/**
 * ClickHouse DDL: the raw `activities` table, and the rollups the query API
 * reads trends from: materialized views into AggregatingMergeTree tables at
 * minute, hour and day grain.
 */
import type { Migration, Statement } from './migrations.ts'

export interface ClickHouseSchemaOptions {
  /**
   * Every name is qualified with it: the embedded engine ignores a client's
   * default database, so unqualified DDL would land in `default` there.
   */
  database: string
  /** Days to keep raw rows; 0 keeps them forever. */
  ttlDays: number
  /** Months (YYYYMM) that hold raw rows now: what a new rollup backfills, one statement each. */
  partitions?: readonly number[]
}

/** What a rollup row is keyed by, besides its bucket: every dimension a trend may filter or group by. */
export const ROLLUP_DIMENSIONS = ['tenant_id', 'service', 'source', 'action', 'category', 'severity', 'status'] as const
export type RollupDimension = (typeof ROLLUP_DIMENSIONS)[number]

export const ROLLUP_GRAINS = ['minute', 'hour', 'day'] as const
export type RollupGrain = (typeof ROLLUP_GRAINS)[number]

export interface Rollup {
  table: string
  grain: RollupGrain
  dimensions: readonly RollupDimension[]
  /** Where its view reads: the raw table, or a finer rollup listed before it. */
  source: string
}

/**
 * One rollup per grain, keyed by every dimension. Only the minute rollup
 * reads inserted rows; the hour one reads the block the minute one just
 * wrote (views cascade), already collapsed to a row per minute and key, and
 * the day one the hour one's. Each view still writes a part per insert
 * (measured embedded, 5,000-row batches: 10.5 us per row with no view, 16.5
 * with the three, BENCHMARKS.md), so there are no more of them than the
 * grains need. In dependency order: migrations create and backfill
 * a rollup after its source.
 */
export const ROLLUPS: readonly Rollup[] = [
  { table: 'activities_by_minute', grain: 'minute', dimensions: ROLLUP_DIMENSIONS, source: 'activities' },
  { table: 'activities_by_hour', grain: 'hour', dimensions: ROLLUP_DIMENSIONS, source: 'activities_by_minute' },
  { table: 'activities_by_day', grain: 'day', dimensions: ROLLUP_DIMENSIONS, source: 'activities_by_hour' },
]

const BUCKET_FUNCTION: Record<RollupGrain, string> = { minute: 'toStartOfMinute', hour: 'toStartOfHour', day: 'toStartOfDay' }

/**
 * The aggregation a rollup holds, as the SELECT both its materialized view and
 * its backfill run: one definition, so a backfilled month and a live one agree.
 * Actors and durations are kept as mergeable states (uniq, t-digest), so any
 * range of buckets combines into exact counts and approximate uniques and
 * quantiles without touching raw rows; a coarser rollup merges the finer
 * one's states into its own (-MergeState).
 */
function rollupSelect(database: string, rollup: Rollup, month?: number): string {
  const dims = rollup.dimensions.join(', ')
  const raw = rollup.source === 'activities'
  const time = raw ? 'timestamp' : 'bucket'
  const aggregates = raw
    ? `count() AS events,
    countIf(status = 'failure') AS failures,
    uniqStateIf(actor_id, actor_id != '') AS actors,
    quantileTDigestStateIf(assumeNotNull(duration_ms), duration_ms IS NOT NULL) AS duration`
    : `sum(events) AS events,
    sum(failures) AS failures,
    uniqMergeState(actors) AS actors,
    quantileTDigestMergeState(duration) AS duration`
  return `SELECT toDateTime(${BUCKET_FUNCTION[rollup.grain]}(${time}), 'UTC') AS bucket, ${dims},
    ${aggregates}
FROM ${database}.${rollup.source}${month === undefined ? '' : ` WHERE toYYYYMM(${time}) = ${month}`}
GROUP BY bucket, ${dims}`
}

function rollupStatements({ database, partitions = [] }: ClickHouseSchemaOptions): Statement[] {
  return ROLLUPS.flatMap((rollup): Statement[] => {
    const table = `${database}.${rollup.table}`
    return [
      `CREATE TABLE IF NOT EXISTS ${table}
(
    bucket    DateTime('UTC'),
${rollup.dimensions.map((d) => `    ${d.padEnd(9)} LowCardinality(String),`).join('\n')}
    events    SimpleAggregateFunction(sum, UInt64),
    failures  SimpleAggregateFunction(sum, UInt64),
    actors    AggregateFunction(uniq, String),
    duration  AggregateFunction(quantileTDigest, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, ${rollup.dimensions.join(', ')})
-- A retried insert into activities re-sends its block with the same token;
-- without a window of its own the view's target would count it twice.
SETTINGS non_replicated_deduplication_window = 10000`,
      // A migration that died half way through its backfill runs again from
      // the top: start from empty so no month is counted twice (this comes
      // after every upstream backfill, which cascades into existing views).
      // Nothing else writes while migrations run: the exporter starts the
      // pipeline after.
      `TRUNCATE TABLE ${table}`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${table}_mv TO ${table} AS
${rollupSelect(database, rollup)}`,
      ...partitions.map((month, i) => ({
        sql: `INSERT INTO ${table} ${rollupSelect(database, rollup, month)} SETTINGS insert_deduplicate = 0`,
        progress: `backfilling ${rollup.table}: month ${month} (${i + 1}/${partitions.length})`,
      })),
    ]
  })
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
  { version: 2, name: 'create rollups', statements: rollupStatements },
]
