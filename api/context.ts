/** What every /api/v1 route plugin is given: the stores to read, the cache, and where audit events go. */
import type { Activity } from '../schemas/activity.ts'
import type { ClickHouseReader, PostgresReader } from '../schemas/component.ts'
import type { QueryCache } from './query-cache.ts'

export interface ApiContext {
  clickhouse: ClickHouseReader
  /** Absent when the PostgreSQL exporter is disabled: /audit answers 503. */
  postgres?: PostgresReader
  cache: QueryCache
  /** Records an activity the API itself produces (an export), through the pipeline or straight to the stores. */
  audit(activity: Activity): Promise<void>
}
