import { redactUrl } from '../../../lib/redact.ts'
import { asToolkitError, dbUrl, givenColumns, instant, ToolkitError, type Command } from '../command.ts'
import { compare, formatCompare } from '../compare.ts'

export const compareCommand: Command = {
  name: 'compare',
  usage: `actline triggers compare --db URL --legacy-table T --since TIME [--until TIME] [--actline-db URL]
                         [--table-column C] [--operation-column C] [--time-column C] [--id-column C]
                         [--threshold 100] [--json]
    the dual run: legacy audit rows per table and operation against actline's db.* activities
    (audit_log at --actline-db, default --db) in the window; exit 1 below the threshold`,
  example: 'actline triggers compare --db postgres://app@127.0.0.1:5432/shop --legacy-table audit_logs --since now-7d',
  async run(o, open) {
    const legacyTable = o['legacy-table']
    if (!legacyTable) throw new ToolkitError('--legacy-table is required: the table the audit triggers write (schema.table or table)')
    const since = instant(o.since, '--since')
    const until = o.until === undefined ? new Date() : instant(o.until, '--until')
    const threshold = o.threshold === undefined ? 100 : Number(o.threshold)
    if (!(threshold >= 0 && threshold <= 100)) throw new ToolkitError(`--threshold is a percentage from 0 to 100, got '${String(o.threshold)}'`)
    const client = await open(dbUrl(o))
    const actline = o['actline-db'] ? await open(o['actline-db']) : client
    const result = await compare(client, actline, { legacyTable, since, until, threshold, columns: givenColumns(o, ['table', 'operation', 'time', 'id'] as const) }).catch((err) => {
      if ((err as { code?: string }).code === '42P01') throw new ToolkitError(`no audit_log table at ${redactUrl(o['actline-db'] ?? String(dbUrl(o)))}: pass --actline-db, the PostgreSQL actline exports to`)
      throw asToolkitError(err)
    })
    console.log(o.json ? JSON.stringify(result, null, 2) : formatCompare(result, threshold))
    return result.below_threshold.length ? 1 : 0
  },
}
