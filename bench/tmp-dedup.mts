import { createClient } from '@clickhouse/client'
import { createChdbConnection } from 'chdb/connection'
const c = createClient({ connection: createChdbConnection({ path: '/tmp/chdedup' }) } as never)
await c.command({ query: 'DROP TABLE IF EXISTS default.t' })
await c.command({ query: "CREATE TABLE default.t (a String, CONSTRAINT c CHECK a != 'bad') ENGINE = MergeTree ORDER BY a SETTINGS non_replicated_deduplication_window = 100" })
const ins = async (rows: string[], token: string) => {
  try { await c.insert({ table: 'default.t', values: rows.map((a) => ({ a })), format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: token } }); return 'ok' } catch (e) { return (e as Error).message.slice(0, 60) }
}
console.log(await ins(['bad', 'x'], 'tok1'))
await c.command({ query: 'ALTER TABLE default.t DROP CONSTRAINT c' })
console.log(await ins(['bad', 'x'], 'tok1'))
console.log(await (await c.query({ query: 'SELECT count() FROM default.t', format: 'JSONEachRow' })).json())
await c.close()
