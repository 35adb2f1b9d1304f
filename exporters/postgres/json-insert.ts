/**
 * PGlite's insert (and a server's that does not take COPY): the batch as one
 * JSON parameter, taken apart by json_to_recordset, linked into its chains
 * (chain.ts) in one transaction.
 */
import type pg from 'pg'
import type { Activity } from '../../schemas/activity.ts'
import { ACTIVITY_ROW, postgresColumn, type FieldKind } from '../../schemas/activity-row.ts'
import { CHAIN_COLUMNS } from '../../schemas/audit-chain-store.ts'
import { joinCooperatively } from '../../schemas/cooperative.ts'
import { isoRowEncoder } from '../encoding.ts'
import { appendChained, type LinkedInsert } from './chain.ts'
import { inTransaction } from './pooled.ts'

/** Each kind of field as PostgreSQL types it (the audit_log DDL uses the same types). */
export const PG_TYPE: Record<FieldKind, string> = {
  uuid: 'uuid',
  time: 'timestamptz',
  text: 'text',
  'optional-text': 'text',
  'optional-number': 'double precision',
  json: 'jsonb',
  ip: 'inet',
  map: 'jsonb',
}

// The batch is read as json, not jsonb: jsonb would first build a binary
// document of the whole batch only to take it apart again; json_to_recordset
// reads the text once, and only the jsonb columns are converted (0.83-0.88x
// PGlite's CPU per row, bench:audit-insert).
const COLUMNS = ACTIVITY_ROW.map((f) => `${postgresColumn(f)} ${PG_TYPE[f.kind] === 'jsonb' ? 'json' : PG_TYPE[f.kind]}`).join(', ')

const NAMES = ACTIVITY_ROW.map(postgresColumn).join(', ')

const SELECTED = ACTIVITY_ROW.map((f) => (PG_TYPE[f.kind] === 'jsonb' ? `${postgresColumn(f)}::jsonb` : postgresColumn(f))).join(', ')

// One parameter holding the batch as JSON: a constant-size statement whatever
// the batch size (a multi-row VALUES list hits pg's 65535-parameter cap at
// ~3000 rows), and JSON.stringify is native, unlike per-value serialization.
// The chain's hashes travel as hex (chain.ts links them).
export const INSERT_SQL = `INSERT INTO audit_log (${NAMES}, ${CHAIN_COLUMNS.join(', ')})
SELECT ${SELECTED}, chain, chain_seq, pg_catalog.decode(prev_hash, 'hex'), pg_catalog.decode(row_hash, 'hex')
FROM pg_catalog.json_to_recordset($1::pg_catalog.json) AS r(${COLUMNS}, chain text, chain_seq bigint, prev_hash text, row_hash text)
ON CONFLICT (id, occurred_at) DO NOTHING`

/**
 * Rows of one statement. The batch goes in as several, each built (rows
 * hashed and serialized) while the one before runs: PGlite runs in its own
 * thread and a server in its own process, so the hashing overlaps the
 * database's work instead of adding to it.
 */
const STATEMENT_ROWS = 1000

/** Linked rows into audit_log on `client`, by json_to_recordset: the LinkedInsert chain.ts calls. */
export function linkedJsonInsert(client: pg.ClientBase): LinkedInsert {
  return async (rows, link) => {
    let stored = 0
    let running: Promise<pg.QueryResult> | undefined
    for (let from = 0; from < rows.length; from += STATEMENT_ROWS) {
      const json = await joinCooperatively(rows.slice(from, from + STATEMENT_ROWS), (a, i) => {
        const l = link(from + i)
        const row = JSON.stringify(toRow(a))
        return `${row.slice(0, -1)},"chain":${JSON.stringify(l.chain)},"chain_seq":${l.seq},"prev_hash":"${l.prev.toString('hex')}","row_hash":"${l.hash.toString('hex')}"}`
      }, ',')
      if (running) stored += (await running).rowCount ?? 0
      running = client.query(INSERT_SQL, [`[${json}]`])
      // Awaited at the next statement: until then a refusal must not count as unhandled.
      running.catch(() => {})
    }
    if (running) stored += (await running).rowCount ?? 0
    return stored
  }
}

/** The batch, linked into its chains, by json_to_recordset in one transaction. */
export async function jsonInsert(client: pg.ClientBase, batch: readonly Activity[]): Promise<void> {
  await inTransaction(client, () => appendChained(client, batch, linkedJsonInsert(client)))
}

/** One row as a jsonb_to_recordset object under audit_log's column names: times in RFC 3339, absent fields left out (NULL). */
const toRow = isoRowEncoder(postgresColumn)
