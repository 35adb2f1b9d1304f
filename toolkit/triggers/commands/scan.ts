import { dbUrl, kinds, type Command } from '../command.ts'
import { formatScan, scan } from '../scan.ts'

export const scanCommand: Command = {
  name: 'scan',
  usage: `actline triggers scan --db URL [--schema S ...] [--include notify,timestamp] [--json]
    every trigger on the user's tables, its kind (audit, activity, notify, timestamp,
    business) read from its function, and whether it can be removed`,
  example: 'actline triggers scan --db postgres://app@127.0.0.1:5432/shop --schema public --json',
  async run(o, open) {
    const include = kinds(o.include)
    const result = await scan(await open(dbUrl(o)), { schemas: o.schema ?? [], include })
    console.log(o.json ? JSON.stringify(result, null, 2) : formatScan(result))
    return 0
  },
}
