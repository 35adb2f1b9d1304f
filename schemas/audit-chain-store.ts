/**
 * The hash chain as audit_log stores it: the columns, the canonical row as
 * SQL computes it from what the table holds, streaming a chain, and
 * verifying every chain. One definition for the readers: the migration that
 * chains existing rows, `actline audit verify`, `GET /api/v1/audit/verify`
 * and retention.
 *
 * The canonical row is the text PostgreSQL prints for a JSON array of the
 * row's values (docs/audit-integrity.md), so it computes the text and its
 * SHA-256 itself (sha256(), PostgreSQL 11+): chains are checked in scans at
 * the database's speed, and only where a link is broken are rows read into
 * verifyChain, which names what was done.
 */
import { ACTIVITY_ROW, postgresColumn, type FieldKind } from './activity-row.ts'
import { GENESIS } from './audit-chain.ts'
import { againstAnchor, cutAway, verifyChain, type ChainCut, type ChainHead, type ChainReport, type StoredChainRow } from './audit-verify.ts'

/** What reads the chain: a query returning rows (a pool, a client, the API's reader). */
export interface ChainDb {
  rows<T>(sql: string, params?: readonly unknown[]): Promise<T[]>
}

export const HEADS_TABLE = 'audit_chain_heads'

/** The chain's columns on audit_log, in the order the writer inserts them. */
export const CHAIN_COLUMNS = ['chain', 'chain_seq', 'prev_hash', 'row_hash'] as const

/** A timestamptz as whole microseconds since the epoch, as text (exact: extract() is numeric since PostgreSQL 14). */
export const micros = (column: string) => `(extract(epoch from ${column}) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8::pg_catalog.text`

/**
 * An inet as the canonical array holds it: the address bytes in hex (the
 * family follows from their number), and `/bits` after them when the mask is
 * not the whole address. The collector only ever writes whole addresses, so
 * the rows it wrote read the same as before the mask was covered, and a
 * netmask changed in the table (set_masklen) no longer hashes the same.
 */
const ipSql = (c: string) =>
  `pg_catalog.encode(pg_catalog.substr(pg_catalog.inet_send(${c}), 5), 'hex') OPERATOR(pg_catalog.||) CASE WHEN pg_catalog.masklen(${c}) OPERATOR(pg_catalog.=) CASE pg_catalog.family(${c}) WHEN 4 THEN 32 ELSE 128 END THEN '' ELSE '/' OPERATOR(pg_catalog.||) pg_catalog.masklen(${c})::pg_catalog.text END`

/** Each kind of field as the canonical array holds it, in SQL (audit-chain.ts, canonicalField, is the same in the collector). */
const CANONICAL_FIELD: Record<FieldKind, (column: string) => string> = {
  uuid: (c) => `${c}::pg_catalog.text`,
  time: micros,
  text: (c) => c,
  'optional-text': (c) => c,
  'optional-number': (c) => `pg_catalog.encode(pg_catalog.float8send(${c}), 'hex')`,
  json: (c) => c,
  ip: ipSql,
  map: (c) => c,
}

/**
 * The canonical row's text in SQL, for a row of audit_log aliased `t`, in
 * chain `chain` at sequence `seq` (SQL expressions). json_build_array, not
 * jsonb_build_array: the same text (its jsonb arguments print as jsonb does,
 * its strings are escaped the same way) without building a binary document
 * first, 2.3 µs a row against 3.0.
 */
export function canonicalSql(chain = 't.chain', seq = 't.chain_seq', t = 't'): string {
  return `pg_catalog.json_build_array(1, ${chain}, (${seq})::pg_catalog.text, ${ACTIVITY_ROW.map((f) => CANONICAL_FIELD[f.kind](`${t}.${postgresColumn(f)}`)).join(', ')})::pg_catalog.text`
}

/** Whether a stored row still gives its hash: SHA-256(prev_hash || canonical). */
export const selfValidSql = (t = 't') =>
  `pg_catalog.sha256(${t}.prev_hash OPERATOR(pg_catalog.||) pg_catalog.convert_to(${canonicalSql(`${t}.chain`, `${t}.chain_seq`, t)}, 'UTF8'::pg_catalog.name)) OPERATOR(pg_catalog.=) ${t}.row_hash`

/**
 * Per chain of the rows `where` selects: its first row that does not follow
 * the one before it (its own hash, its prev_hash, no gap; the first row is
 * held against `startSeq`/`startHash`), its row count and its last sequence
 * number. Each row is hashed where it is read: the sort and window above
 * then carry 80-byte rows, not whole ones (OFFSET 0 keeps the planner from
 * folding the hashing into them).
 */
function linkScanSql(where: string, startSeq: string, startHash: string): string {
  return `SELECT chain, pg_catalog.min(chain_seq) FILTER (WHERE NOT ok)::pg_catalog.text AS bad, pg_catalog.count(*)::pg_catalog.text AS n, pg_catalog.max(chain_seq)::pg_catalog.text AS last FROM (
  SELECT s.chain, s.chain_seq, s.self_ok
    AND (coalesce(pg_catalog.lag(s.chain_seq) OVER w, ${startSeq}) OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.=) s.chain_seq
    AND coalesce(pg_catalog.lag(s.row_hash) OVER w, ${startHash}) OPERATOR(pg_catalog.=) s.prev_hash AS ok
  FROM (SELECT t.chain, t.chain_seq, t.prev_hash, t.row_hash, (${selfValidSql()}) IS TRUE AS self_ok FROM audit_log t WHERE ${where} OFFSET 0) s
  WINDOW w AS (PARTITION BY s.chain ORDER BY s.chain_seq)
) c GROUP BY chain`
}

interface ChainRowRecord {
  chain: string
  chain_seq: string
  id: string
  prev_hash: Buffer
  row_hash: Buffer
  canonical: string
}

/**
 * One chain's rows from `afterSeq` on, in sequence order, a page at a time:
 * keyset on (chain, chain_seq), the index's order, so a chain of any length
 * streams in constant memory.
 */
export async function* chainRows(db: ChainDb, chain: string, afterSeq = 0n, page = 2000): AsyncGenerator<StoredChainRow> {
  let after = afterSeq
  for (;;) {
    const rows = await db.rows<ChainRowRecord>(
      `SELECT t.chain, t.chain_seq::text AS chain_seq, t.id::text AS id, t.prev_hash, t.row_hash, ${canonicalSql()} AS canonical
FROM audit_log t WHERE t.chain = $1 AND t.chain_seq > $2 ORDER BY t.chain_seq LIMIT ${page}`,
      [chain, after.toString()],
    )
    for (const r of rows) yield { chain: r.chain, seq: BigInt(r.chain_seq), id: r.id, prev_hash: r.prev_hash, hash: r.row_hash, canonical: r.canonical }
    if (rows.length < page) return
    after = BigInt(rows[rows.length - 1]!.chain_seq)
  }
}

export interface StoredHead {
  chain: string
  seq: bigint
  hash: Buffer
  updated_at: Date
}

/** Every chain's head as the writer last recorded it, in chain order; `tenant` narrows to one chain. */
export async function chainHeads(db: ChainDb, tenant?: string): Promise<StoredHead[]> {
  const rows = await db.rows<{ chain: string; seq: string; hash: Buffer; updated_at: Date }>(
    `SELECT chain, seq::text AS seq, hash, updated_at FROM ${HEADS_TABLE}${tenant === undefined ? '' : ' WHERE chain = $1'} ORDER BY chain COLLATE "C"`,
    tenant === undefined ? [] : [tenant],
  )
  return rows.map((r) => ({ chain: r.chain, seq: BigInt(r.seq), hash: r.hash, updated_at: r.updated_at }))
}

/** The action of the event `actline audit retain` appends to each chain it cuts; its details hold the cuts. */
export const RETENTION_ACTION = 'actline.audit.retention'

/** Whether a retention event's cuts are to be believed (its signature, where a key is configured). */
export type RetentionFilter = (chain: string, details: RetentionDetails & { signature?: unknown }) => boolean

export interface RetentionDetails {
  before: string
  partitions: string[]
  /** [from, to, prev hash hex, last hash hex] per dropped run of sequence numbers. */
  cuts: [string, string, string, string][]
}

/** The cuts every retention event of the chain recorded (a small partial index finds them), of the events `accept` takes. */
export async function chainCuts(db: ChainDb, chain: string, accept: RetentionFilter = () => true): Promise<ChainCut[]> {
  const rows = await db.rows<{ details: RetentionDetails }>(
    `SELECT details FROM audit_log WHERE chain = $1 AND action = '${RETENTION_ACTION}' AND service = 'actline'`,
    [chain],
  )
  return rows.flatMap((r) =>
    (Array.isArray(r.details?.cuts) && accept(chain, r.details) ? r.details.cuts : []).map(([from, to, prev, last]) => ({ from: BigInt(from), to: BigInt(to), prev: Buffer.from(prev, 'hex'), last: Buffer.from(last, 'hex') })),
  )
}

export interface AuditVerifyOptions {
  /** One tenant's chain only ('' is the chain of rows without a tenant). */
  tenant?: string
  /** Only rows from this time on: each chain is read from its first row at or after it, whose link is taken on trust. */
  since?: Date
  /** Heads an earlier anchor recorded: a chain that now ends before one, or holds another row there, is broken. */
  anchor?: readonly ChainHead[]
  /** Which retention events' cuts to believe; all by default. */
  acceptRetention?: RetentionFilter
  /** Called after each chain. */
  onChain?: (report: ChainReport) => void
}

export interface AuditVerifyReport {
  ok: boolean
  chains: ChainReport[]
  rows: number
  /** Rows that carry no chain at all: inserted around the writer. */
  unchained: number
  seconds: number
}

/**
 * Verify audit_log's chains: each one's links (verifyChain), then its end
 * against the head the writer recorded and, with an anchor, the anchor's.
 */
export async function verifyAuditLog(db: ChainDb, options: AuditVerifyOptions = {}): Promise<AuditVerifyReport> {
  const t0 = performance.now()
  const recorded = new Map((await chainHeads(db, options.tenant)).map((h) => [h.chain, h]))
  const anchored = new Map((options.anchor ?? []).filter((h) => options.tenant === undefined || h.chain === options.tenant).map((h) => [h.chain, h]))
  const chains = new Set([...recorded.keys(), ...anchored.keys(), ...(await storedChains(db, options.tenant))])
  // Every chain at once, in sequential scans of the table (a sequential read beats one index walk per chain); one tenant's by its index.
  const whole = options.tenant === undefined && !options.since ? await scanAll(db, [...chains], recorded) : undefined
  const reports: ChainReport[] = []
  for (const chain of [...chains].sort()) {
    const start = options.since ? await startAt(db, chain, options.since) : undefined
    const anchor = anchored.get(chain)
    let report = await checkChain(db, chain, { anchor: anchor && (!start || anchor.seq > start.seq) ? anchor : undefined, cuts: start ? [] : await chainCuts(db, chain, options.acceptRetention), start, scanned: whole && (whole.get(chain) ?? EMPTY_SCAN) })
    if (!report.broken) report = againstHead(report, recorded.get(chain), start?.seq ?? 0n)
    reports.push(report)
    options.onChain?.(report)
  }
  const unchained = await db.rows<{ n: number }>(
    `SELECT count(*)::int AS n FROM audit_log WHERE row_hash IS NULL${options.tenant === undefined ? '' : ` AND ${options.tenant === '' ? 'tenant_id IS NULL' : 'tenant_id = $1'}`}`,
    options.tenant ? [options.tenant] : [],
  )
  const n = unchained[0]!.n
  return { ok: n === 0 && reports.every((r) => !r.broken), chains: reports, rows: reports.reduce((s, r) => s + r.rows, 0), unchained: n, seconds: (performance.now() - t0) / 1000 }
}

interface Scan {
  bad: string | null
  n: string
  last: string | null
  at_rows: number
}

/** No rows from where the scan started: the whole chain is what was read before. */
const EMPTY_SCAN: Scan = { bad: null, n: '0', last: null, at_rows: 0 }

/**
 * One chain, from `start` on. The database checks every link in one scan
 * (linkScanSql), returning only where the first broken one is; from two
 * rows before it, verifyChain reads the rows and names the break, or steps
 * over what retention cut and hands back to the scan. `scanned` is this
 * chain's part of a scan of every chain (scanAll), used for the first round.
 */
async function checkChain(db: ChainDb, chain: string, o: { anchor?: ChainHead | undefined; cuts: readonly ChainCut[]; start?: { seq: bigint; hash: Buffer } | undefined; scanned?: Scan | undefined }): Promise<ChainReport> {
  let at = o.start ?? { seq: 0n, hash: GENESIS }
  const startSeq = at.seq
  let rows = 0
  let scanned = o.scanned
  // What retention dropped between where the check started and where it ended. Counted from the cuts, not
  // from each verifyChain round: a round may start before a cut an earlier round already stepped over.
  const done = (r: Omit<ChainReport, 'chain' | 'rows'>): ChainReport => {
    const end = r.broken ? BigInt(r.broken.seq) : at.seq
    const retained = o.cuts.filter((c) => c.from > startSeq && c.to <= end).reduce((n, c) => n + (c.to - c.from + 1n), 0n)
    return { chain, rows, ...(retained > 0n && { retained: retained.toString() }), ...r }
  }
  for (;;) {
    // A row that shares the sequence number we resume at is not seen by a scan after it: counted apart.
    const scan =
      scanned ??
      (await db.rows<Scan>(
        `SELECT c.bad, coalesce(c.n, '0') AS n, c.last,
  (SELECT count(*)::int FROM audit_log d WHERE d.chain = $1 AND d.chain_seq = $2::bigint) AS at_rows
FROM (SELECT 1) one LEFT JOIN (${linkScanSql('t.chain = $1 AND t.chain_seq > $2::bigint', '$2::bigint', '$3::bytea')}) c ON true`,
        [chain, at.seq.toString(), at.hash],
      ))[0]!
    scanned = undefined
    if (scan.bad === null && scan.at_rows <= 1) {
      rows += Number(scan.n)
      if (scan.last !== null) at = { seq: BigInt(scan.last), hash: (await db.rows<{ row_hash: Buffer }>('SELECT row_hash FROM audit_log WHERE chain = $1 AND chain_seq = $2', [chain, scan.last]))[0]!.row_hash }
      break
    }
    const bad = scan.at_rows > 1 ? at.seq : BigInt(scan.bad!)
    // Two rows before the break, where there are: what verifyChain needs to tell an insertion from an edit.
    const back = await db.rows<{ seq: string; row_hash: Buffer }>(
      'SELECT chain_seq::text AS seq, row_hash FROM audit_log WHERE chain = $1 AND chain_seq < $2 ORDER BY chain_seq DESC LIMIT 3',
      [chain, bad.toString()],
    )
    const from = back.length === 3 ? { seq: BigInt(back[2]!.seq), hash: back[2]!.row_hash } : { seq: 0n, hash: GENESIS }
    const between = async (lo: bigint, hi: bigint) => Number((await db.rows<{ n: string }>('SELECT count(*)::text AS n FROM audit_log WHERE chain = $1 AND chain_seq > $2 AND chain_seq <= $3', [chain, lo.toString(), hi.toString()]))[0]!.n)
    // The scan counted the rows up to `at`; verifyChain counts its own from `from`.
    rows += from.seq >= at.seq ? await between(at.seq, from.seq) : -(await between(from.seq, at.seq))
    const part = await verifyChain(chain, chainRows(db, chain, from.seq), { cuts: o.cuts, start: from, until: bad })
    rows += part.rows
    if (part.broken) return done({ ...(part.head && { head: part.head }), broken: part.broken })
    at = { seq: BigInt(part.head!.seq), hash: Buffer.from(part.head!.hash, 'hex') }
  }
  const head = at.seq > 0n ? { seq: at.seq.toString(), hash: at.hash.toString('hex') } : undefined
  if (o.anchor) {
    const a = o.anchor
    const [there] = at.seq < a.seq ? [] : await db.rows<{ hash: Buffer; id: string }>('SELECT row_hash AS hash, id::text AS id FROM audit_log WHERE chain = $1 AND chain_seq = $2', [chain, a.seq.toString()])
    const broken = againstAnchor(chain, at.seq, a, there, cutAway(o.cuts, a.seq))
    if (broken) return done({ ...(head && { head }), broken })
  }
  return done(head ? { head } : {})
}

/** A whole chain must end where the writer last left it. */
function againstHead(report: ChainReport, head: StoredHead | undefined, startSeq: bigint): ChainReport {
  const last = BigInt(report.head?.seq ?? startSeq)
  const { chain } = report
  if (!head) return { ...report, broken: { kind: 'inserted', chain, seq: '1', message: `chain '${chain}' has no head: its rows were not written by actline` } }
  if (last < head.seq) return { ...report, broken: { kind: 'truncated', chain, seq: (last + 1n).toString(), message: `the chain ends at ${last}, the writer's head is ${head.seq}: rows after ${last} were removed` } }
  if (last > head.seq) return { ...report, broken: { kind: 'inserted', chain, seq: (head.seq + 1n).toString(), message: `rows ${head.seq + 1n}-${last} come after the writer's head (${head.seq}): they were inserted around it` } }
  if (report.head && report.head.hash !== head.hash.toString('hex')) return { ...report, broken: { kind: 'replaced', chain, seq: last.toString(), message: `row ${last} is not the one the writer recorded as the head: the chain was replaced` } }
  return report
}

/** Scans verify runs at once: PostgreSQL hashes on one core per query, and a pool has more than one connection (PGlite's one queues them). */
const SCANS = 2

/**
 * Every chain's first broken link, row count and last sequence number, from
 * genesis: the chains split into SCANS groups of about equal rows (by their
 * heads), each group one scan, run side by side.
 */
async function scanAll(db: ChainDb, chains: readonly string[], heads: ReadonlyMap<string, StoredHead>): Promise<Map<string, Scan>> {
  const groups: { chains: string[]; rows: bigint }[] = Array.from({ length: SCANS }, () => ({ chains: [], rows: 0n }))
  for (const chain of [...chains].sort((a, b) => Number((heads.get(b)?.seq ?? 0n) - (heads.get(a)?.seq ?? 0n)))) {
    const lightest = groups.reduce((min, g) => (g.rows < min.rows ? g : min))
    lightest.chains.push(chain)
    lightest.rows += heads.get(chain)?.seq ?? 0n
  }
  const scans = await Promise.all(
    groups.filter((g) => g.chains.length > 0).map((g) =>
      db.rows<Scan & { chain: string }>(`SELECT *, 0 AS at_rows FROM (${linkScanSql('t.chain = ANY($2::text[])', '0', '$1::bytea')}) c`, [GENESIS, g.chains]),
    ),
  )
  return new Map(scans.flat().map(({ chain, ...scan }) => [chain, scan]))
}

/** The link before the chain's first row at or after `since`. */
async function startAt(db: ChainDb, chain: string, since: Date): Promise<{ seq: bigint; hash: Buffer } | undefined> {
  const rows = await db.rows<{ seq: string; prev_hash: Buffer }>(
    `SELECT chain_seq::text AS seq, prev_hash FROM audit_log WHERE chain = $1 AND occurred_at >= $2 ORDER BY chain_seq LIMIT 1`,
    [chain, since.toISOString()],
  )
  return rows[0] && { seq: BigInt(rows[0].seq) - 1n, hash: rows[0].prev_hash }
}

/** The chains audit_log holds, by a loose index scan of (chain, chain_seq): one probe per chain, not a scan of the rows. */
async function storedChains(db: ChainDb, tenant?: string): Promise<string[]> {
  if (tenant !== undefined) return (await db.rows<{ chain: string }>('SELECT chain FROM audit_log WHERE chain = $1 LIMIT 1', [tenant])).map((r) => r.chain)
  const rows = await db.rows<{ chain: string }>(`WITH RECURSIVE c AS (
  (SELECT chain FROM audit_log WHERE chain IS NOT NULL ORDER BY chain LIMIT 1)
  UNION ALL
  SELECT (SELECT a.chain FROM audit_log a WHERE a.chain > c.chain ORDER BY a.chain LIMIT 1) FROM c WHERE c.chain IS NOT NULL
) SELECT chain FROM c WHERE chain IS NOT NULL`)
  return rows.map((r) => r.chain)
}
