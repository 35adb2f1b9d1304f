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

/**
 * How a rollup counts unique actors. `uniq` keeps up to 65,536 hashes
 * exactly, and re-inserts them one by one whenever a state is read or
 * merged; `uniqCombined(14)` keeps up to 512 exactly, then a HyperLogLog of
 * 2^14 registers (~0.8% standard error; on the benchmark's 5,000 actors a
 * day, 0.05% mean and 0.14% worst) that reads and merges as a block of
 * registers. Measured on the benchmark's data, interleaved: a year of daily
 * states of ~5,000 actors read per day in 31 ms with uniqCombined(14) against
 * 66 with uniq (16 against 27 ms merged into one); a year of states keyed by
 * every dimension (a few actors each) filtered to one tenant in 271 against
 * 196 ms. So each rollup uses the sketch that suits the size of its states.
 */
export type ActorsSketch = 'uniq' | 'uniqCombined(14)'

/** The sketch's aggregate with a combinator: actorsSketch('uniqCombined(14)', 'Merge', 'actors') -> uniqCombinedMerge(14)(actors). */
export function actorsSketch(sketch: ActorsSketch, combinator: '' | 'If' | 'StateIf' | 'MergeState' | 'Merge', args: string): string {
  const [, name, params = ''] = /^(\w+)(\(.*\))?$/.exec(sketch)!
  return `${name}${combinator}${params}(${args})`
}

export interface Rollup {
  table: string
  grain: RollupGrain
  dimensions: readonly RollupDimension[]
  /** Where its view reads: the raw table, or a finer rollup listed before it (same sketch). */
  source: string
  actors: ActorsSketch
}

/**
 * One rollup per grain, keyed by every dimension. Only the minute rollup
 * reads inserted rows; the hour one reads the block the minute one just
 * wrote (views cascade), already collapsed to a row per minute and key, and
 * the day one the hour one's. Each view still writes a part per insert
 * (measured embedded, 5,000-row batches, one insert thread: 22.8 us per row
 * with no view, 39.5 with the three, BENCHMARKS.md), so there are no more
 * of them than the grains need.
 *
 * Plus one rollup of the day with no dimension, for the year-long trends a
 * dashboard opens on: merging unique-actor states costs per (state, actor),
 * and keyed by seven dimensions a year of days holds about one state element
 * per raw row (10M for 10M rows, ~350 ms), where one state a day holds each
 * day's actors once. It reads inserted rows itself, because its sketch is
 * not the keyed rollups' (a uniq state does not convert). A query reads the
 * rollup of its grain with the fewest dimensions that still has every one it
 * filters or groups by.
 *
 * In dependency order: migrations create and backfill a rollup after its
 * source.
 */
export const ROLLUPS: readonly Rollup[] = [
  { table: 'activities_by_minute', grain: 'minute', dimensions: ROLLUP_DIMENSIONS, source: 'activities', actors: 'uniq' },
  { table: 'activities_by_hour', grain: 'hour', dimensions: ROLLUP_DIMENSIONS, source: 'activities_by_minute', actors: 'uniq' },
  { table: 'activities_by_day', grain: 'day', dimensions: ROLLUP_DIMENSIONS, source: 'activities_by_hour', actors: 'uniq' },
  { table: 'activities_by_day_total', grain: 'day', dimensions: [], source: 'activities', actors: 'uniqCombined(14)' },
]

const BUCKET_FUNCTION: Record<RollupGrain, string> = { minute: 'toStartOfMinute', hour: 'toStartOfHour', day: 'toStartOfDay' }

/**
 * The aggregation a rollup holds, as the SELECT both its materialized view and
 * its backfill run: one definition, so a backfilled month and a live one agree.
 * Actors and durations are kept as mergeable states (uniq or uniqCombined, t-digest), so any
 * range of buckets combines into exact counts and approximate uniques and
 * quantiles without touching raw rows; a coarser rollup merges the finer
 * one's states into its own (-MergeState).
 */
function rollupSelect(database: string, rollup: Rollup, month?: number): string {
  const dims = rollup.dimensions.map((d) => `, ${d}`).join('')
  const raw = rollup.source === 'activities'
  const time = raw ? 'timestamp' : 'bucket'
  const aggregates = raw
    ? `count() AS events,
    countIf(status = 'failure') AS failures,
    ${actorsSketch(rollup.actors, 'StateIf', "actor_id, actor_id != ''")} AS actors,
    quantileTDigestStateIf(assumeNotNull(duration_ms), duration_ms IS NOT NULL) AS duration`
    : `sum(events) AS events,
    sum(failures) AS failures,
    ${actorsSketch(rollup.actors, 'MergeState', 'actors')} AS actors,
    quantileTDigestMergeState(duration) AS duration`
  return `SELECT toDateTime(${BUCKET_FUNCTION[rollup.grain]}(${time}), 'UTC') AS bucket${dims},
    ${aggregates}
FROM ${database}.${rollup.source}${month === undefined ? '' : ` WHERE toYYYYMM(${time}) = ${month}`}
GROUP BY bucket${dims}`
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
    actors    AggregateFunction(${rollup.actors}, String),
    duration  AggregateFunction(quantileTDigest, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (${['bucket', ...rollup.dimensions].join(', ')})
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
