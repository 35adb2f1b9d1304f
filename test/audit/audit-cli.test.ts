/**
 * `actline audit verify | anchor | retain` as a user runs them: the built
 * command as a process, against PGlite's directory and the real server,
 * after a superuser tampered with the rows directly in the database.
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseActivity, type Activity } from '../../schemas/activity.ts'
import { PostgresExporterConfig } from '../../exporters/postgres/config.ts'
import { createPostgresExporter } from '../../exporters/postgres/exporter.ts'
import { createLogger } from '../../collector/server/logger.ts'
import { RETENTION_ACTION } from '../../schemas/audit-chain-store.ts'
import { createScratchDatabase, PG_URL, tempDir } from '../helpers/stores.ts'
import { asSuperuser } from '../helpers/tamper.ts'

const BIN = join(import.meta.dirname, '../../bin/actline.js')
const logger = createLogger('silent')

function audit(args: string[], env: Record<string, string> = {}): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, 'audit', ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  )
}

let clock = Date.UTC(2025, 0, 10)
function activity(tenant: string, timestamp?: number): Activity {
  const r = parseActivity({ action: 'record.changed', source: 'user', tenant_id: tenant, actor_id: 'alice', timestamp: timestamp ?? (clock += 60_000) }, Date.now())
  if (!r.ok) throw new Error('bad fixture')
  return r.activity
}

const targets = ['embedded', ...(PG_URL ? ['server'] : [])] as const

describe.each(targets)('actline audit (%s)', (target) => {
  const dir = tempDir()
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined
  let configFile: string
  let exporterConfig: PostgresExporterConfig & { path: string }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const signing = { ACTLINE_AUDIT_SIGNING_KEY: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() }
  const publicKeyFile = join(dir.path, 'audit.pub')

  /** The store opened for the test's own writes and tampering, closed before a command runs (PGlite is one process's). */
  async function withStore<T>(fn: (e: ReturnType<typeof createPostgresExporter>, tamper: (sql: string, params?: unknown[]) => Promise<void>) => Promise<T>): Promise<T> {
    const e = createPostgresExporter(exporterConfig, logger)
    await e.start()
    const tamper = (sql: string, params: unknown[] = []) => asSuperuser(e.pool(), sql, params)
    try {
      return await fn(e, tamper)
    } finally {
      await e.shutdown()
    }
  }

  beforeAll(async () => {
    scratch = target === 'server' ? await createScratchDatabase() : undefined
    exporterConfig = { ...PostgresExporterConfig.parse(scratch ? { url: scratch.url } : {}), path: join(dir.path, 'data', 'postgres') }
    configFile = join(dir.path, 'collector.yaml')
    writeFileSync(configFile, `data_dir: ${join(dir.path, 'data')}\nexporters:\n  clickhouse: { enabled: false }\n  postgres:\n    ${scratch ? `url: ${scratch.url}` : 'enabled: true'}\n`)
    writeFileSync(publicKeyFile, publicKey.export({ format: 'pem', type: 'spki' }).toString())
    await withStore(async (e) => {
      // Two old months and this one, for two tenants and the no-tenant chain.
      const rows = [...Array.from({ length: 30 }, (_, i) => activity(i % 2 ? 'acme' : 'globex')), activity('acme', Date.UTC(2025, 1, 3)), activity('acme', Date.now() - 1000), activity('', Date.now())]
      // A late event: January's row written after March's, so it sits in the middle of its chain.
      rows.push(activity('acme', Date.UTC(2025, 0, 31)), activity('acme', Date.now()))
      expect(await e.export(rows.map((a) => (a.tenant_id === '' ? { ...a, tenant_id: undefined } : a)) as Activity[])).toEqual({ status: 'success' })
    })
  })
  afterAll(async () => {
    await scratch?.drop()
    dir.remove()
  })

  it('verify: every chain whole, exit 0; --json for scripts', async () => {
    const r = await audit(['verify', '--config', configFile])
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^ok +acme: 19 rows, head 19 [0-9a-f]{16}$/m)
    expect(r.stdout).toMatch(/^verified 3 chains, 35 rows in .* every chain is whole$/m)
    const json = JSON.parse((await audit(['verify', '--config', configFile, '--json', '--tenant', 'globex'])).stdout)
    expect(json).toMatchObject({ ok: true, rows: 15, unchained: 0, chains: [{ chain: 'globex', rows: 15 }] })
  })

  it('anchor: the heads, signed; verify --anchor refuses an altered anchor and finds a tail removed with the head moved back', async () => {
    const file = join(dir.path, 'anchor.json')
    const wrote = await audit(['anchor', '--config', configFile, '--out', file], signing)
    expect(wrote).toMatchObject({ status: 0, stdout: expect.stringContaining('wrote the heads of 3 chains') })
    expect(wrote.stdout).toContain('(signed)')
    const anchor = JSON.parse(readFileSync(file, 'utf8'))
    expect(anchor.signature).toMatchObject({ algorithm: 'Ed25519' })
    expect(await audit(['verify', '--config', configFile, '--anchor', file, '--public-key', publicKeyFile])).toMatchObject({ status: 0 })
    // An anchor someone lowered to match a shorter chain no longer verifies.
    const forged = join(dir.path, 'forged.json')
    writeFileSync(forged, JSON.stringify({ ...anchor, heads: anchor.heads.map((h: { seq: string }) => ({ ...h, seq: '1' })) }))
    const refused = await audit(['verify', '--config', configFile, '--anchor', forged, '--public-key', publicKeyFile])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toMatch(/signature does not verify/)
    // The last rows of globex removed, and its head moved back to match: only the anchor tells.
    await withStore(async (_e, tamper) => {
      await tamper(`DELETE FROM audit_log WHERE chain = 'globex' AND chain_seq > 13`)
      await tamper(`UPDATE audit_chain_heads h SET seq = 13, hash = a.row_hash FROM audit_log a WHERE h.chain = 'globex' AND a.chain = 'globex' AND a.chain_seq = 13`)
    })
    expect((await audit(['verify', '--config', configFile, '--tenant', 'globex'])).status).toBe(0)
    const found = await audit(['verify', '--config', configFile, '--tenant', 'globex', '--anchor', file, '--public-key', publicKeyFile])
    expect(found.status).toBe(1)
    expect(found.stdout).toMatch(/^BROKEN +globex: truncated at 14: the chain ends at 13, the anchor's head is 15/m)
  })

  it('verify names an edited row and exits 1', async () => {
    await withStore((_e, tamper) => tamper(`UPDATE audit_log SET actor_id = 'someone-else' WHERE chain = 'acme' AND chain_seq = 4`))
    const r = await audit(['verify', '--config', configFile, '--tenant', 'acme'])
    expect(r.status).toBe(1)
    expect(r.stdout).toMatch(/^BROKEN +acme: edited at 4 \([0-9a-f-]{36}\): row 4 .* does not match its hash: it was edited$/m)
    // Retention refuses to drop a month of a broken chain: it would hide the edit.
    const refused = await audit(['retain', '--config', configFile, '--before', '2025-03'])
    expect(refused.status).toBe(1)
    expect(refused.stderr).toMatch(/chain 'acme' is broken \(edited at 4/)
    await withStore((_e, tamper) => tamper(`UPDATE audit_log SET actor_id = 'alice' WHERE chain = 'acme' AND chain_seq = 4`))
    expect((await audit(['verify', '--config', configFile, '--tenant', 'acme'])).status).toBe(0)
  })

  it('retain: drops whole months, records each cut in its chain, and verify tells retention from deletion', async () => {
    const dry = await audit(['retain', '--config', configFile, '--before', '2025-03', '--dry-run'])
    expect(dry.status, dry.stderr + dry.stdout).toBe(0)
    expect(dry.stdout).toMatch(/would drop audit_log_y2025m01, audit_log_y2025m02 \(30 rows\)/)
    const r = await audit(['retain', '--config', configFile, '--before', '2025-03'], signing)
    expect(r.status, r.stderr + r.stdout).toBe(0)
    expect(r.stdout).toMatch(/dropped audit_log_y2025m01, audit_log_y2025m02: 30 rows from 2 chains, each cut recorded in its chain/)
    await withStore(async (e) => {
      const { rows } = await e.pool().query(`SELECT chain, chain_seq::int AS seq, details->'cuts' AS cuts FROM audit_log WHERE action = $1 ORDER BY chain`, [RETENTION_ACTION])
      // acme: 1-16 (January and February) and 18 (the late January row); 17 and 19 are this month's.
      expect(rows.map((r) => [r.chain, r.seq, r.cuts.map((c: string[]) => `${c[0]}-${c[1]}`)])).toEqual([['acme', 20, ['1-16', '18-18']], ['globex', 14, ['1-13']]])
    })
    const verified = await audit(['verify', '--config', configFile, '--public-key', publicKeyFile])
    expect(verified.status, verified.stdout).toBe(0)
    expect(verified.stdout).toMatch(/^ok +acme: 3 rows \(17 dropped by retention\), head 20/m)
    // A row of this month deleted is a deletion still: no cut names it.
    await withStore((_e, tamper) => tamper(`DELETE FROM audit_log WHERE chain = 'acme' AND chain_seq = 17`))
    const deleted = await audit(['verify', '--config', configFile, '--tenant', 'acme', '--public-key', publicKeyFile])
    expect(deleted.status).toBe(1)
    expect(deleted.stdout).toMatch(/BROKEN +acme: deleted at 17/)
    expect((await audit(['retain', '--config', configFile, '--before', '2999-01'])).stderr).toMatch(/would drop the current month/)
  })

  it.runIf(target === 'embedded')('tells the user to stop the collector holding the embedded store', async () => {
    writeFileSync(join(dir.path, 'data', 'actline.pid'), `${process.pid}\n`)
    const r = await audit(['verify', '--config', configFile])
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/the collector \(pid \d+\) holds the embedded PostgreSQL store: ask it \(GET \/api\/v1\/audit\/verify\) or stop it first/)
  })
})
