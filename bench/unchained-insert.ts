/**
 * The audit_log insert as it was before the hash chain (issue 17), for the
 * benchmarks that measure what the chain costs: the same json_to_recordset
 * statement and the same COPY-through-a-staging-table, without the chain's
 * columns, its heads or its transaction. Bench-only: the exporter always
 * chains.
 */
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import type { Activity } from '../schemas/activity.ts'
import { ACTIVITY_ROW, postgresColumn } from '../schemas/activity-row.ts'
import { isoRowEncoder } from '../exporters/encoding.ts'
import { copyFields } from '../exporters/postgres/copy.ts'
import { PG_TYPE } from '../exporters/postgres/json-insert.ts'

const NAMES = ACTIVITY_ROW.map(postgresColumn).join(', ')
const COLUMNS = ACTIVITY_ROW.map((f) => `${postgresColumn(f)} ${PG_TYPE[f.kind] === 'jsonb' ? 'json' : PG_TYPE[f.kind]}`).join(', ')
const SELECTED = ACTIVITY_ROW.map((f) => (PG_TYPE[f.kind] === 'jsonb' ? `${postgresColumn(f)}::jsonb` : postgresColumn(f))).join(', ')

export const PLAIN_INSERT_SQL = `INSERT INTO audit_log (${NAMES}) SELECT ${SELECTED} FROM json_to_recordset($1::json) AS r(${COLUMNS}) ON CONFLICT (id, occurred_at) DO NOTHING`

const toRow = isoRowEncoder(postgresColumn)

export function plainJson(batch: readonly Activity[]): string {
  return `[${batch.map((a) => JSON.stringify(toRow(a))).join(',')}]`
}

export async function plainJsonInsert(client: pg.ClientBase, batch: readonly Activity[]): Promise<void> {
  await client.query(PLAIN_INSERT_SQL, [plainJson(batch)])
}

const staged = new WeakSet<pg.ClientBase>()

/** copy.ts's insert before the chain: COPY into a session's staging table, INSERT ... ON CONFLICT from it, one transaction. */
export async function plainCopyInsert(client: pg.ClientBase, batch: readonly Activity[]): Promise<void> {
  await client.query('BEGIN')
  if (!staged.has(client)) {
    await client.query(`CREATE TEMP TABLE IF NOT EXISTS bench_plain_stage (LIKE audit_log INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`)
    staged.add(client)
  }
  let text = ''
  for (const a of batch) text += `${copyFields(a)}\n`
  await pipeline(Readable.from([text]), client.query(copyFrom(`COPY bench_plain_stage (${NAMES}) FROM STDIN`)))
  await client.query(`INSERT INTO audit_log (${NAMES}) SELECT ${NAMES} FROM bench_plain_stage ON CONFLICT (id, occurred_at) DO NOTHING`)
  await client.query('COMMIT')
}
