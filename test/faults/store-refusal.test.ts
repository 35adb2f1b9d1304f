/**
 * A value validation could not foresee, refused by the stores themselves: a
 * CHECK constraint on the real ClickHouse table and on audit_log refuses
 * rows whose action is `poison.row`. The exporters must isolate those rows
 * (split), dead-letter them with the reason, and deliver every other row of
 * the same batches; /readyz and /metrics say so. Then `actline dead-letter`
 * lists them, a replay while the constraint holds keeps them, and once it
 * is dropped, replay stores each once, even when it runs twice.
 */
import { execFile } from 'node:child_process'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { uuidv7 } from '../../schemas/activity.ts'
import { eventually, openStores, post, tempDir, testConfig } from '../helpers/stores.ts'
import { backlog, killChildren, startCollectorProcess, writeConfig } from '../helpers/process.ts'
import { expectStoredOnce, metric } from '../helpers/faults.ts'

afterAll(killChildren)
const dir = tempDir('actline-refusal-')
afterAll(() => dir.remove())

const cli = async (...args: string[]) => {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['bin/actline.js', ...args])
    return { code: 0, stdout }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout + e.stderr }
  }
}

describe('rows a store refuses', () => {
  const yaml = `data_dir: ${dir.path}\nserver: { port: 0 }\npipeline: { batch: { timeout_ms: 200 }, retry: { initial_interval_ms: 20, max_interval_ms: 100 } }\n`
  const configFile = writeConfig(dir.path, yaml)
  const config = testConfig(dir.path)
  const good = Array.from({ length: 300 }, () => uuidv7())
  const poison = [uuidv7(), uuidv7()]

  it('are isolated and dead-lettered with the reason; every other row of their batches is stored', async () => {
    const stores = await openStores(config)
    await stores.clickhouse.command({ query: "ALTER TABLE actline.activities ADD CONSTRAINT no_poison CHECK action != 'poison.row'" })
    await stores.postgres.query("ALTER TABLE audit_log ADD CONSTRAINT no_poison CHECK (action <> 'poison.row')")
    await stores.close()

    const c = await startCollectorProcess(configFile)
    const rows = good.map((id) => ({ id, action: 'refusal.good', source: 'user' }))
    rows.splice(100, 0, { id: poison[0]!, action: 'poison.row', source: 'user' })
    rows.splice(250, 0, { id: poison[1]!, action: 'poison.row', source: 'user' })
    const res = await post(c.url, JSON.stringify(rows))
    expect(res.status).toBe(200)
    expect(res.json.accepted).toBe(302)
    await eventually('log drained', async () => (await backlog(c.url)) === 0, 60_000)
    const ready = await fetch(`${c.url}/readyz`)
    expect(ready.status).toBe(503)
    const body = await ready.json()
    expect(body.details.stores.clickhouse).toMatch(/^dead-lettering: 2 rows/)
    expect(body.details.stores.postgres).toMatch(/^dead-lettering: 2 rows/)
    expect(await metric(c.url, 'actline_exporter_activities_total', 'exporter="clickhouse",outcome="dead_lettered"')).toBe(2)
    expect(await metric(c.url, 'actline_exporter_activities_total', 'exporter="postgres",outcome="exported"')).toBe(300)
    c.child.kill('SIGTERM')
    expect(await c.exited).toBe(0)
    await expectStoredOnce(config, good)
  })

  it('are listed by `actline dead-letter list`, kept by a replay that fails again', async () => {
    const list = await cli('dead-letter', 'list', '--json', '--config', configFile)
    expect(list.code).toBe(0)
    const parsed = JSON.parse(list.stdout)
    expect(parsed.exporters.map((e: { exporter: string; rows: number }) => [e.exporter, e.rows])).toEqual([['clickhouse', 2], ['postgres', 2]])
    expect(parsed.exporters[0].reasons[0].reason).toMatch(/no_poison|VIOLATED_CONSTRAINT|[Cc]onstraint/)

    const again = await cli('dead-letter', 'replay', '--config', configFile)
    expect(again.code).toBe(1)
    expect(again.stdout).toMatch(/failed again 2/)
    expect(JSON.parse((await cli('dead-letter', 'list', '--json', '--config', configFile)).stdout).exporters[1].rows).toBe(2)
  })

  it('are stored once by replay after the cause is fixed, even when replay runs twice', async () => {
    const stores = await openStores(config)
    await stores.clickhouse.command({ query: 'ALTER TABLE actline.activities DROP CONSTRAINT no_poison' })
    await stores.postgres.query('ALTER TABLE audit_log DROP CONSTRAINT no_poison')
    await stores.close()

    const dry = JSON.parse((await cli('dead-letter', 'replay', '--dry-run', '--json', '--config', configFile)).stdout)
    expect(dry.exporters.map((e: { replayed: number }) => e.replayed)).toEqual([2, 2])
    // A replay that died before it rewrote its files: the next one finds the rows again.
    const files = ['clickhouse', 'postgres'].map((n) => join(dir.path, 'dead-letter', `${n}.ndjson`))
    for (const f of files) copyFileSync(f, `${f}.saved`)
    const first = await cli('dead-letter', 'replay', '--json', '--config', configFile)
    expect(first.code).toBe(0)
    expect(JSON.parse(first.stdout).exporters.map((e: { replayed: number }) => e.replayed)).toEqual([2, 2])
    for (const f of files) copyFileSync(`${f}.saved`, f)
    const second = JSON.parse((await cli('dead-letter', 'replay', '--json', '--config', configFile)).stdout)
    expect(second.exporters[0]).toMatchObject({ exporter: 'clickhouse', already_stored: 2, replayed: 0 })
    expect((await cli('dead-letter', 'list', '--config', configFile)).stdout).toMatch(/clickhouse: 0 rows/)
    await expectStoredOnce(config, [...good, ...poison])
  })

  it('refuses to replay into embedded stores a running collector holds', async () => {
    const c = await startCollectorProcess(configFile)
    const res = await cli('dead-letter', 'replay', '--config', configFile)
    expect(res.code).toBe(1)
    expect(res.stdout).toMatch(new RegExp(`the collector \\(pid ${c.child.pid}\\) holds the embedded clickhouse and postgres store: stop it first`))
    c.child.kill('SIGTERM')
    await c.exited
  })

  it('are stored once when a view failed after the table took them: an unknown error, retried within its bound, then split without sending them twice', async () => {
    const data = `${dir.path}/view`
    const viewConfig = testConfig(data)
    const stores = await openStores(viewConfig)
    // code 395 is neither an outage nor a data error: the bounded retry applies.
    await stores.clickhouse.command({
      query: "CREATE MATERIALIZED VIEW actline.poison_view ENGINE = MergeTree ORDER BY tuple() AS SELECT id, throwIf(action = 'view.poison', 'a view refused the row') AS x FROM actline.activities",
      clickhouse_settings: { allow_suspicious_low_cardinality_types: 1 },
    })
    await stores.close()
    const c = await startCollectorProcess(writeConfig(dir.path, `data_dir: ${data}\nserver: { port: 0 }\npipeline: { batch: { timeout_ms: 100 }, retry: { initial_interval_ms: 20, max_interval_ms: 100, max_elapsed_ms: 500 } }\n`))
    const ids = Array.from({ length: 201 }, () => uuidv7())
    const rows = ids.map((id, i) => ({ id, action: i === 120 ? 'view.poison' : 'view.good', source: 'system' }))
    expect((await post(c.url, JSON.stringify(rows))).status).toBe(200)
    await eventually('log drained', async () => (await backlog(c.url)) === 0, 60_000)
    c.child.kill('SIGTERM')
    expect(await c.exited).toBe(0)
    // The table took the whole first attempt, the row the view refused included: each row once.
    await expectStoredOnce(viewConfig, ids, { postgres: false })
    expect(c.output()).toMatch(/a failed insert left rows in the store; they are not sent again/)
  })
})
