import { writeFileSync } from 'node:fs'
import { BACKUP_TABLE, takeBackup } from '../backup.ts'
import { dbUrl, ToolkitError, type Command } from '../command.ts'

export const backupCommand: Command = {
  name: 'backup',
  usage: `actline triggers backup --db URL --out FILE [--schema S ...] [--json]
    every trigger's and function's definition, enabled state and comments, into FILE
    and the database's ${BACKUP_TABLE} table (the only thing it writes)`,
  example: 'actline triggers backup --db postgres://app@127.0.0.1:5432/shop --out triggers-backup.json',
  async run(o, open) {
    if (!o.out) throw new ToolkitError(`--out FILE is required: where the backup is written (it also goes to the ${BACKUP_TABLE} table)`)
    const backup = await takeBackup(await open(dbUrl(o)), o.schema ?? [])
    writeFileSync(o.out, `${JSON.stringify(backup, null, 2)}\n`)
    console.log(o.json ? JSON.stringify({ file: o.out, taken_at: backup.taken_at, triggers: backup.triggers.length }) : `backed up ${backup.triggers.length} triggers to ${o.out} and ${BACKUP_TABLE} (taken_at ${backup.taken_at})`)
    return 0
  },
}
