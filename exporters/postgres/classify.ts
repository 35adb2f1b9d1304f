/** PostgreSQL's SQLSTATEs, for the shared classifier (../classify.ts). */
import type { StoreClassifier } from '../classify.ts'

/**
 * PostgreSQL SQLSTATEs. Data: class 22 (data exception: NUL in text is
 * 22P05/22021) and 23 (integrity: a CHECK refused the row). Outage: classes
 * 08 (connection), 28 (authorization), 40 (rollback: deadlock,
 * serialization), 53 (insufficient resources: disk full), 57 (operator
 * intervention: shutting down), 58 (system error), lock not available
 * (55P03), a missing table (42P01, as for ClickHouse), a missing database
 * (3D000) and missing privileges (42501). Anything else (a syntax error
 * after a schema change, an internal error) is unknown.
 */
export const classifyPostgres: StoreClassifier = (_error, code) => {
  // pg's DatabaseError carries a five-character SQLSTATE.
  if (!code || !/^[0-9A-Z]{5}$/.test(code)) return undefined
  const cls = code.slice(0, 2)
  if (cls === '22' || cls === '23') return 'data'
  if (['08', '28', '40', '53', '57', '58'].includes(cls) || ['55P03', '42P01', '3D000', '42501'].includes(code)) return 'outage'
  return 'unknown'
}

