import { parseBackup, restore, restoreSteps, select, showStep } from '../backup.ts'
import { triggerKey } from '../catalog.ts'
import { asToolkitError, dbUrl, phaseList, readToolkitFile, toolkitErrors, ToolkitError, type Command } from '../command.ts'
import { parsePlan } from '../plan.ts'

export const restoreCommand: Command = {
  name: 'restore',
  usage: `actline triggers restore --db URL --from FILE [--trigger NAME ... | --plan plan.json --phase N|all] [--yes] [--json]
    recreate them exactly: all, the named ones (name, table.name or schema.table.name),
    or a phase of the plan they were dropped by; without --yes it prints the SQL and changes nothing`,
  example: 'actline triggers restore --db postgres://app@127.0.0.1:5432/shop --from triggers-backup.json --plan plan.json --phase 2 --yes',
  async run(o, open) {
    if (!o.from) throw new ToolkitError('--from FILE is required: a file actline triggers backup wrote')
    const backup = readToolkitFile(o.from, parseBackup)
    let names = o.trigger ?? []
    if (o.phase !== undefined || o.plan !== undefined) {
      if (names.length) throw new ToolkitError('give --trigger or --plan with --phase, not both')
      if (!o.plan) throw new ToolkitError('--phase needs --plan plan.json: the plan whose phase is restored')
      if (o.phase === undefined) throw new ToolkitError('--plan needs --phase N|all: which of its phases to restore')
      const phases = phaseList(o.phase)
      const plan = readToolkitFile(o.plan, parsePlan)
      names = plan.phases.filter((p) => phases.includes(p.phase)).flatMap((p) => p.triggers.map(triggerKey))
      if (names.length === 0) throw new ToolkitError(`phase ${o.phase} of ${o.plan} holds no triggers: nothing to restore`)
    }
    const chosen = toolkitErrors(() => select(backup, names))
    const client = await open(dbUrl(o))
    if (!o.yes) {
      const sql: string[] = []
      for (const t of chosen) {
        const steps = await restoreSteps(client, t).catch((err) => {
          throw asToolkitError(err)
        })
        sql.push(...steps.map(showStep))
      }
      console.log(o.json ? JSON.stringify({ dry_run: true, triggers: chosen.map(triggerKey), sql }, null, 2) : `-- would restore ${chosen.length} triggers (nothing changed; add --yes to run this):\n${sql.join('\n')}`)
      return 0
    }
    const differ = await restore(client, chosen).catch((err) => {
      throw asToolkitError(err)
    })
    if (o.json) console.log(JSON.stringify({ restored: chosen.length, differ }))
    else console.log(differ.length ? `restored ${chosen.length} triggers, but ${differ.length} differ from the backup: ${differ.join(', ')}` : `restored ${chosen.length} triggers; each is as backed up (definition, function, state, comments)`)
    return differ.length ? 1 : 0
  },
}
