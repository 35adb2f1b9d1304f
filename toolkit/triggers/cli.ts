/**
 * `actline triggers <command>`: the toolkit for removing a database's audit
 * triggers. Every command takes the database as a URL (`--db`, or
 * ACTLINE_TRIGGERS_DB) and says what went wrong in one line. The commands
 * are the files of commands/, listed here and nowhere else.
 */
import type pg from 'pg'
import { connect, parseOptions, ToolkitError, type Command, type Options } from './command.ts'
import { scanCommand } from './commands/scan.ts'
import { backupCommand } from './commands/backup.ts'
import { restoreCommand } from './commands/restore.ts'
import { planCommand } from './commands/plan.ts'
import { dropCommand } from './commands/drop.ts'
import { compareCommand } from './commands/compare.ts'
import { backfillCommand } from './commands/backfill.ts'

const COMMANDS: readonly Command[] = [scanCommand, backupCommand, restoreCommand, planCommand, dropCommand, compareCommand, backfillCommand]

const indent = (text: string) => text.replace(/^/gm, '  ')

export const USAGE = `usage:
${COMMANDS.map((c) => indent(c.usage)).join('\n')}

examples:
${COMMANDS.map((c) => `  ${c.example}`).join('\n')}`

const commandUsage = (c: Command) => `usage:\n${indent(c.usage)}\n\nexample:\n  ${c.example}`

export async function triggersCommand(argv: string[]): Promise<number> {
  let values: Options
  let positionals: string[]
  try {
    ;({ values, positionals } = parseOptions(argv))
  } catch (err) {
    console.error(`triggers: ${(err as Error).message}\n${USAGE}`)
    return 2
  }
  const [name] = positionals
  const command = COMMANDS.find((c) => c.name === name)
  if (!name || (values.help && !command)) {
    console.log(USAGE)
    return values.help ? 0 : 2
  }
  if (!command) {
    console.error(`triggers: unknown command '${name}'\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(commandUsage(command))
    return 0
  }
  const clients: pg.Client[] = []
  try {
    return await command.run(values, async (url) => {
      const client = await connect(url)
      clients.push(client)
      return client
    })
  } catch (err) {
    if (err instanceof ToolkitError) {
      console.error(`triggers ${name}: ${err.message}`)
      return 1
    }
    const e = err as { code?: string; message: string }
    console.error(`triggers ${name}: ${e.code === '42501' ? `permission denied (${e.message}): the user needs to read pg_trigger and pg_proc` : e.message}`)
    return 1
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})))
  }
}
