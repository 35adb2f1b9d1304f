/**
 * Synthetic activities generated inside ClickHouse (INSERT ... SELECT from
 * numbers()), for the query benchmark and the large-export test: millions of
 * rows in seconds, through the real table, so the rollups' views fire as
 * they do for ingested rows. Deterministic in `seed`.
 */
export const SYNTHETIC_ACTIONS = [
  ['user.login', 'user', 'authentication'], ['user.logout', 'user', 'authentication'], ['user.password_reset', 'user', 'authentication'],
  ['user.update_profile', 'user', 'profile'], ['order.create', 'user', 'data_modification'], ['order.cancel', 'user', 'data_modification'],
  ['order.view', 'user', 'data_access'], ['cart.add', 'user', 'data_modification'], ['cart.remove', 'user', 'data_modification'],
  ['search.query', 'user', 'search'], ['report.export', 'user', 'data_export'], ['invoice.pay', 'user', 'payment'],
  ['subscription.renew', 'scheduled', 'subscription'], ['billing.charge', 'system', 'billing'], ['email.send', 'system', 'communication'],
  ['webhook.deliver', 'integration', 'integration'], ['sync.crm', 'integration', 'integration'], ['db.orders.insert', 'database', 'database'],
  ['db.orders.update', 'database', 'database'], ['db.users.update', 'database', 'database'], ['db.payments.insert', 'database', 'database'],
  ['admin.role_grant', 'user', 'admin'], ['admin.config_change', 'user', 'configuration'], ['file.upload', 'user', 'file'],
  ['file.download', 'user', 'file'], ['api.token_create', 'user', 'security'], ['job.cleanup', 'scheduled', 'scheduled_job'],
  ['job.reindex', 'scheduled', 'scheduled_job'], ['notification.push', 'system', 'notification'], ['content.publish', 'user', 'content'],
] as const

export const SYNTHETIC_SERVICES = ['api', 'web', 'billing', 'worker', 'auth'] as const

export interface SyntheticOptions {
  database: string
  rows: number
  /** First row number, so successive inserts add distinct rows. */
  offset?: number
  /** Rows spread uniformly over [endMs - days, endMs). */
  endMs: number
  days: number
  tenants?: number
  actors?: number
  /** Per mille of rows that fail. @default 30 */
  failurePerMille?: number
}

const sqlList = (values: readonly string[]) => `[${values.map((v) => `'${v}'`).join(', ')}]`

export function syntheticInsertSql(o: SyntheticOptions): string {
  const spanMs = o.days * 86_400_000
  const h = (salt: number) => `cityHash64(number, ${salt})`
  const action = `(${h(2)} % ${SYNTHETIC_ACTIONS.length}) + 1`
  return `INSERT INTO ${o.database}.activities
  (id, timestamp, received_at, source, action, category, severity, status, entity_type, entity_id, actor_id, tenant_id, service,
   trace_id, span_id, correlation_id, duration_ms, details, ip, user_agent, attributes)
SELECT
  generateUUIDv4(number) AS id,
  fromUnixTimestamp64Milli(toInt64(${o.endMs} - (${h(1)} % ${spanMs})) - 1, 'UTC') AS timestamp,
  timestamp + toIntervalMillisecond(${h(8)} % 2000) AS received_at,
  ${sqlList(SYNTHETIC_ACTIONS.map((a) => a[1]))}[${action}] AS source,
  ${sqlList(SYNTHETIC_ACTIONS.map((a) => a[0]))}[${action}] AS action,
  ${sqlList(SYNTHETIC_ACTIONS.map((a) => a[2]))}[${action}] AS category,
  if(status = 'failure', 'warning', 'info') AS severity,
  if(${h(3)} % 1000 < ${o.failurePerMille ?? 30}, 'failure', 'success') AS status,
  'order' AS entity_type,
  toString(number % 100000) AS entity_id,
  concat('u', toString(${h(4)} % ${o.actors ?? 5000})) AS actor_id,
  concat('t', toString(${h(5)} % ${o.tenants ?? 10})) AS tenant_id,
  ${sqlList(SYNTHETIC_SERVICES)}[(${h(6)} % ${SYNTHETIC_SERVICES.length}) + 1] AS service,
  '' AS trace_id, '' AS span_id, '' AS correlation_id,
  round(-log(1 - (${h(7)} % 1000000) / 1000000.) * 120, 1) AS duration_ms,
  concat('{"order_id":', toString(number % 100000), ',"note":"synthetic row ', toString(number), '"}') AS details,
  NULL AS ip, 'synthetic/1.0' AS user_agent, map() AS attributes
FROM numbers(${o.offset ?? 0}, ${o.rows})`
}
