/**
 * `actline audit verify | anchor | retain`: the audit trail's own tools
 * (docs/audit-integrity.md). They live with the exporter that writes the
 * chain; the registry hands them to the command line.
 *
 * Exit codes: 0 whole (or done), 1 a chain is broken (verify) or the work
 * was refused, 2 a usage error or a store that cannot be reached.
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { KeyObject } from 'node:crypto'
import type { Logger } from '../../../schemas/component.ts'
import { chainHeads, verifyAuditLog, type AuditVerifyReport } from '../../../schemas/audit-chain-store.ts'
import { AnchorError, makeAnchor, publicKey, readAnchor, retentionSigned, signingKey, trustedKey } from '../../../schemas/audit-anchor.ts'
import type { ChainHead, ChainReport } from '../../../schemas/audit-verify.ts'
import { redactUrl } from '../../../lib/redact.ts'
import type { PostgresExporterConfig } from '../config.ts'
import { createPostgresExporter } from '../exporter.ts'
import { retain, RetainError } from './retain.ts'

export interface AuditContext {
  postgres: PostgresExporterConfig & { path: string }
  audit: { signing_key?: string | undefined; public_key?: string | undefined }
  /** For the store's own messages (migrations applied on open); warnings only, on stderr. */
  logger: Logger
  /** The live collector holding the embedded store, if one does. */
  holder?: number | undefined
}

const USAGE = `usage:
  actline audit verify [--tenant T] [--since 2026-01-01] [--anchor FILE] [--public-key FILE] [--json]
                                    verify every chain (or one tenant's); exit 1 naming the first broken link
  actline audit anchor --out FILE   write every chain's head, signed with audit.signing_key when set
  actline audit retain --before YYYY-MM [--dry-run]
                                    drop the monthly partitions before that month, recording the cut in each chain
options: --config FILE, --db postgres://... (instead of exporters.postgres.url)`

class UsageError extends Error {}

export async function auditCommand(argv: string[], ctx: AuditContext | undefined): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        db: { type: 'string' },
        tenant: { type: 'string' },
        since: { type: 'string' },
        anchor: { type: 'string' },
        'public-key': { type: 'string' },
        out: { type: 'string' },
        before: { type: 'string' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    console.error(`audit: ${(err as Error).message}\n${USAGE}`)
    return 2
  }
  const { positionals, values } = parsed
  const sub = positionals[0]
  if (values.help || !sub) {
    console.log(USAGE)
    return values.help ? 0 : 2
  }
  if (sub !== 'verify' && sub !== 'anchor' && sub !== 'retain') {
    console.error(`audit: unknown command '${sub}'\n${USAGE}`)
    return 2
  }
  if (!ctx) return 2
  const url = values.db ?? ctx.postgres.url
  if (!url && ctx.holder) {
    console.error(`audit ${sub}: the collector (pid ${ctx.holder}) holds the embedded PostgreSQL store: ${sub === 'verify' ? 'ask it (GET /api/v1/audit/verify) or ' : ''}stop it first`)
    return 2
  }
  let keys: { signing?: KeyObject | undefined; trusted?: KeyObject | undefined }
  let since: Date | undefined
  try {
    keys = { signing: ctx.audit.signing_key ? signingKey(ctx.audit.signing_key) : undefined, trusted: values['public-key'] ? publicKey(readText(values['public-key'], '--public-key')) : trustedKey(ctx.audit) }
    if (values.since !== undefined) {
      since = new Date(values.since)
      if (!/^\d{4}-\d\d-\d\d/.test(values.since) || Number.isNaN(since.getTime())) throw new UsageError(`--since must be a date or time such as 2026-01-01 or 2026-01-01T12:00:00Z, got '${values.since}'`)
    }
    if (sub === 'anchor' && !values.out) throw new UsageError('anchor needs --out FILE')
    if (sub === 'retain' && !/^\d{4}-(0[1-9]|1[0-2])$/.test(values.before ?? '')) throw new UsageError(`retain needs --before YYYY-MM, the first month kept, such as 2025-01${values.before ? `; got '${values.before}'` : ''}`)
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof AnchorError)) throw err
    console.error(`audit ${sub}: ${err.message}`)
    return 2
  }
  const exporter = createPostgresExporter({ ...ctx.postgres, ...(url && { url }) }, ctx.logger)
  try {
    await exporter.start()
  } catch (err) {
    console.error(`audit ${sub}: cannot open the audit trail at ${url ? redactUrl(url) : ctx.postgres.path}: ${(err as Error).message}`)
    return 2
  }
  try {
    if (sub === 'verify') return await verify(exporter.reader(), { tenant: values.tenant, since, anchor: values.anchor, json: values.json ?? false, trusted: keys.trusted })
    if (sub === 'anchor') {
      const anchor = makeAnchor(await chainHeads(exporter.reader()), keys.signing)
      writeAtomically(values.out!, `${JSON.stringify(anchor, null, 2)}\n`)
      console.log(`wrote the heads of ${anchor.heads.length} chains to ${values.out} (${anchor.signature ? 'signed' : 'unsigned: set audit.signing_key to sign'})`)
      return 0
    }
    const result = await retain(exporter.pool(), values.before!, { key: keys.signing, dryRun: values['dry-run'] ?? false, progress: (t) => !values.json && console.error(t) })
    if (values.json) console.log(JSON.stringify(result))
    else if (result.partitions.length === 0) console.log(`no partition before ${values.before}: nothing to drop`)
    else {
      console.log(`${values['dry-run'] ? 'would drop' : 'dropped'} ${result.partitions.join(', ')}${values['dry-run'] ? ` (${result.rows} rows)` : `: ${result.rows} rows from ${result.chains.length} chains, each cut recorded in its chain`}`)
    }
    return 0
  } catch (err) {
    if (err instanceof RetainError || err instanceof AnchorError || err instanceof UsageError) {
      console.error(`audit ${sub}: ${err.message}`)
      return err instanceof RetainError ? 1 : 2
    }
    console.error(`audit ${sub}: ${(err as Error).message}`)
    return 2
  } finally {
    await exporter.shutdown()
  }
}

async function verify(
  db: Parameters<typeof verifyAuditLog>[0],
  o: { tenant?: string | undefined; since?: Date | undefined; anchor?: string | undefined; json: boolean; trusted?: KeyObject | undefined },
): Promise<number> {
  let anchor: ChainHead[] | undefined
  if (o.anchor) {
    const read = readAnchor(readText(o.anchor, '--anchor'), o.trusted)
    if (read.signature === 'untrusted' && !o.json) console.error(`note: the anchor is signed, but no public key is configured (audit.public_key or --public-key): its signature was not checked`)
    anchor = read.heads
  }
  const started = performance.now()
  let rows = 0
  let reported = started
  const report: AuditVerifyReport = await verifyAuditLog(db, {
    ...(o.tenant !== undefined && { tenant: o.tenant }),
    ...(o.since && { since: o.since }),
    ...(anchor && { anchor }),
    ...(o.trusted && { acceptRetention: retentionSigned(o.trusted) }),
    onChain: (c: ChainReport) => {
      rows += c.rows
      if (!o.json) {
        console.log(line(c))
        if (performance.now() - reported > 2000) {
          console.error(`verified ${rows} rows (${Math.round(rows / ((performance.now() - started) / 1000))} rows/s)`)
          reported = performance.now()
        }
      }
    },
  })
  if (o.json) console.log(JSON.stringify(report))
  else {
    if (report.unchained > 0) console.log(`BROKEN  ${report.unchained} rows carry no chain: they were inserted around the writer`)
    const broken = report.chains.filter((c) => c.broken).length
    const rate = report.seconds > 0 ? Math.round(report.rows / report.seconds) : report.rows
    console.log(`verified ${report.chains.length} chains, ${report.rows} rows in ${report.seconds.toFixed(1)} s (${rate} rows/s): ${report.ok ? 'every chain is whole' : `${broken} broken${report.unchained ? `, ${report.unchained} rows unchained` : ''}`}`)
  }
  return report.ok ? 0 : 1
}

function line(c: ChainReport): string {
  const name = c.chain === '' ? "'' (no tenant)" : c.chain
  if (c.broken) return `BROKEN  ${name}: ${c.broken.kind} at ${c.broken.seq}${c.broken.id ? ` (${c.broken.id})` : ''}: ${c.broken.message}`
  return `ok      ${name}: ${c.rows} rows${c.retained ? ` (${c.retained} dropped by retention)` : ''}${c.head ? `, head ${c.head.seq} ${c.head.hash.slice(0, 16)}` : ''}`
}

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new UsageError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
}

/** Write then rename: an anchor is never half written. */
function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`
  writeFileSync(tmp, text, { mode: 0o644 })
  renameSync(tmp, file)
}
