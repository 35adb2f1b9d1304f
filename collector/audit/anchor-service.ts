/**
 * The periodic anchor (`audit.anchor_interval`): every interval, every
 * chain's head written to `<data_dir>/audit-anchors/` (one file per anchor,
 * the newest `audit.anchor_keep` kept: at 15 minutes and a few hundred bytes
 * per chain, keeping all would grow by ~140 MB a day with 10,000 tenants)
 * and offered to /metrics as actline_audit_chain_head_sequence, so the heads
 * also live in whatever scrapes the collector. A store that is down skips
 * one anchor and says so; the next interval tries again.
 */
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { chainHeads, type ChainDb } from '../../schemas/audit-chain-store.ts'
import { makeAnchor, signingKey } from '../../schemas/audit-anchor.ts'
import type { Logger } from '../../schemas/component.ts'
import { durationMs, type AuditConfig } from './config.ts'

export const ANCHOR_DIR = 'audit-anchors'

export interface AnchorService {
  start(): void
  stop(): void
  /** Write one anchor now; resolves with its file. */
  anchor(): Promise<string>
  /** The heads of the last anchor, for /metrics. */
  heads(): readonly { chain: string; seq: bigint }[]
}

export function createAnchorService(o: { config: AuditConfig; dataDir: string; db: () => ChainDb; logger: Logger }): AnchorService {
  const dir = join(o.dataDir, ANCHOR_DIR)
  const key = o.config.signing_key ? signingKey(o.config.signing_key) : undefined
  let timer: NodeJS.Timeout | undefined
  let last: { chain: string; seq: bigint }[] = []
  let running: Promise<string> | undefined

  async function anchor(): Promise<string> {
    const heads = await chainHeads(o.db())
    const file = makeAnchor(heads, key)
    mkdirSync(dir, { recursive: true })
    const path = join(dir, `anchor-${file.created_at.replace(/[:.]/g, '-')}.json`)
    writeFileSync(`${path}.tmp`, `${JSON.stringify(file, null, 2)}\n`)
    renameSync(`${path}.tmp`, path)
    last = heads.map((h) => ({ chain: h.chain, seq: h.seq }))
    o.logger.info({ file: path, chains: file.heads.length, signed: Boolean(file.signature) }, 'audit: anchored the chain heads')
    prune()
    return path
  }

  /** The newest anchor_keep of the files it names go on (the names sort by time); other files there are left alone. */
  function prune(): void {
    const anchors = readdirSync(dir).filter((f) => /^anchor-.+\.json$/.test(f)).sort()
    for (const f of anchors.slice(0, Math.max(0, anchors.length - o.config.anchor_keep))) rmSync(join(dir, f), { force: true })
  }

  const tick = () => {
    running ??= anchor()
      .catch((err) => {
        o.logger.warn({ err: (err as Error).message }, 'audit: could not write the anchor; trying again at the next interval')
        return ''
      })
      .finally(() => (running = undefined))
  }

  return {
    start() {
      if (!o.config.anchor_interval || timer) return
      timer = setInterval(tick, durationMs(o.config.anchor_interval)).unref()
    },
    stop() {
      clearInterval(timer)
      timer = undefined
    },
    anchor,
    heads: () => last,
  }
}
