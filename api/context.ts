/** What every /api/v1 route plugin is given: the stores to read, the cache, and where audit events go. */
import type { Activity } from '../schemas/activity.ts'
import type { ClickHouseReader, PostgresReader } from '../schemas/component.ts'
import type { QueryCache } from './query-cache.ts'
import type { RetentionFilter } from '../schemas/audit-chain-store.ts'

export interface ApiContext {
  clickhouse: ClickHouseReader
  /** Absent when the PostgreSQL exporter is disabled: /audit answers 503. */
  postgres?: PostgresReader
  cache: QueryCache
  /** Which retention events /audit/verify believes: those signed with audit's public key, when one is configured. */
  acceptRetention?: RetentionFilter
  /** Records an activity the API itself produces (an export), through the pipeline or straight to the stores. */
  audit(activity: Activity): Promise<void>
}
