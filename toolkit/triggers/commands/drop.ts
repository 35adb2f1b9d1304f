import { asToolkitError, dbUrl, kinds, phaseList, readToolkitFile, ToolkitError, type Command } from '../command.ts'
import { parsePlan, prepareDrop, runDrop } from '../plan.ts'

export const dropCommand: Command = {
  name: 'drop',
  usage: `actline triggers drop --db URL --plan plan.json --phase N|all [--drop-functions] [--include notify,timestamp] [--yes] [--json]
    drop a phase, one transaction per phase (lock_timeout 5 s); refuses a trigger that is not
    audit or activity now (read again from the database; --include adds those kinds), one
    changed since the plan, and one no backup holds; without --yes it prints the SQL and changes nothing`,
  example: 'actline triggers drop --db postgres://app@127.0.0.1:5432/shop --plan plan.json --phase 1 --yes',
  async run(o, open) {
    if (!o.plan) throw new ToolkitError('--plan FILE is required: a plan actline triggers plan --out wrote')
    const plan = readToolkitFile(o.plan, parsePlan)
    const phases = phaseList(o.phase)
    const client = await open(dbUrl(o))
    const steps = await prepareDrop(client, plan, phases, { dropFunctions: o['drop-functions'] === true, include: kinds(o.include) }).catch((err) => {
      throw asToolkitError(err)
    })
    if (!o.yes) {
      const sql = steps.flatMap((s) => (s.statements.length ? [`-- phase ${s.phase}`, 'BEGIN;', ...s.statements.map((q) => `${q};`), 'COMMIT;'] : [`-- phase ${s.phase}: nothing left to drop`]))
      console.log(o.json ? JSON.stringify({ dry_run: true, steps }, null, 2) : `-- would run (nothing changed; add --yes to run this):\n${sql.join('\n')}`)
      return 0
    }
    const done = await runDrop(client, steps)
    console.log(o.json ? JSON.stringify({ phases: done }) : done.map((d) => `phase ${d.phase}: dropped ${d.dropped} triggers`).join('\n'))
    return 0
  },
}
