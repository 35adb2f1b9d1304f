import { writeFileSync } from 'node:fs'
import { triggerKey } from '../catalog.ts'
import { dbUrl, kinds, type Command } from '../command.ts'
import { makePlan } from '../plan.ts'

export const planCommand: Command = {
  name: 'plan',
  usage: `actline triggers plan --db URL [--out plan.json] [--parity TABLE,...] [--include notify,timestamp] [--json]
    the removable triggers in phases: (1) redundant, (2) audit/activity of tables at parity
    in the dual run (--parity), (3) the rest; each with the checksum of its definitions`,
  example: 'actline triggers plan --db postgres://app@127.0.0.1:5432/shop --parity users,orders --out plan.json',
  async run(o, open) {
    const include = kinds(o.include)
    const parityTables = String(o.parity ?? '').split(',').map((t) => t.trim()).filter(Boolean)
    const plan = await makePlan(await open(dbUrl(o)), { schemas: o.schema ?? [], include, parityTables })
    if (o.out) writeFileSync(o.out, `${JSON.stringify(plan, null, 2)}\n`)
    if (o.json) console.log(JSON.stringify(plan, null, 2))
    else {
      for (const p of plan.phases) {
        console.log(`phase ${p.phase}: ${p.title} (${p.triggers.length})`)
        for (const t of p.triggers) console.log(`  ${triggerKey(t)}  ${t.kind}  ${t.why}`)
      }
      if (o.out) console.log(`plan written to ${o.out}`)
    }
    return 0
  },
}
