/**
 * The register hook's direct hooks: pg writes and HTTP server requests
 * become activities without an OpenTelemetry SDK, spans or attributes for
 * what is not an activity. instrumentation/README.md says what each reads.
 */
import type { ActivityClient } from '../activity-client.ts'
import { getActivityClient, serviceName } from '../logging-api.ts'
import { dbRowOptionsFromEnv, rowReader, type DbRowOptions } from '../pg-row-hooks.ts'
import { patchQuery as patchTransactionTagging } from '../transaction-tagging.ts'
import { patchHttpServers, type HttpRequests } from './http-server.ts'
import { onModule } from './modules.ts'
import { patchPgWrites } from './pg-writes.ts'
import { recorder as makeRecorder } from './recorder.ts'

export interface HookOptions {
  /** Where activities go; the logging API's client when absent. */
  client?: ActivityClient
  /** Which HTTP server requests become `api.*` activities. @default 'all' */
  httpRequests?: HttpRequests
  db?: DbRowOptions
  /** Tag each transaction for change-data capture (transaction-tagging.ts). @default false */
  tagTransactions?: boolean
}

/** What the hooks did, for tests and for anyone asking what they cost. */
export interface HookStats {
  /** Statements that looked like writes and were read; reads, BEGIN and COMMIT never count. */
  statementsRead: number
  /** Activities the hooks built (requests and rows). */
  activities: number
  /** Activities that could not be built (the app never hears of it). */
  failures: number
}

type PgModule = { Client?: { prototype: { query: (...args: unknown[]) => unknown } }; default?: PgModule }

let installed: { stats: HookStats } | undefined

export function installHooks(options: HookOptions = {}): void {
  if (installed) return
  const reader = rowReader(options.db)
  const recorder = makeRecorder(() => options.client ?? getActivityClient(), reader, () => serviceName() ?? 'unknown_service:node')
  const pg = { read: 0 }
  installed = {
    get stats() {
      return { statementsRead: pg.read, activities: recorder.stats.activities, failures: recorder.stats.failures }
    },
  }
  onModule('pg', (m) => {
    const client = (m as PgModule).Client ?? (m as PgModule).default?.Client
    if (!client) return
    patchPgWrites(client.prototype, reader, recorder, pg)
    // After the activity hook: tagging's BEGIN and COMMIT then pass through it as the reads they are.
    if (options.tagTransactions) patchTransactionTagging(client.prototype)
  })
  patchHttpServers(recorder, options.httpRequests ?? 'all')
}

export function hookStats(): HookStats | undefined {
  return installed?.stats
}

/** HookOptions from the environment the register hook reads (instrumentation/README.md). */
export function hookOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): HookOptions {
  const http = env['ACTLINE_HTTP_REQUESTS'] ?? 'all'
  if (http !== 'all' && http !== 'writes' && http !== 'none') {
    process.emitWarning(`actline: ACTLINE_HTTP_REQUESTS is '${http}'; it is all, writes or none: using all`, 'ActlineActivityClient')
  }
  return {
    httpRequests: http === 'writes' || http === 'none' ? http : 'all',
    db: dbRowOptionsFromEnv(env),
    tagTransactions: env['ACTLINE_TAG_TRANSACTIONS'] === 'true',
  }
}
