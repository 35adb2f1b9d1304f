/** `audit`: the tamper-evident audit trail's keys and anchors (docs/audit-integrity.md); docs/configuration.md documents each key. */
import { z } from 'zod'
import { AnchorError, publicKey, retentionSigned, signingKey, trustedKey } from '../../schemas/audit-anchor.ts'
import type { RetentionFilter } from '../../schemas/audit-chain-store.ts'

const DURATION = /^(\d+)(s|m|h|d)$/
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/** '15m' as milliseconds. */
export function durationMs(text: string): number {
  const [, n, unit] = DURATION.exec(text)!
  return Number(n) * UNIT_MS[unit as keyof typeof UNIT_MS]
}

export const AuditConfig = z
  .object({
    /**
     * Ed25519 private key that signs anchors and retention events: PEM
     * (PKCS#8) or the 32-byte seed in base64. A secret: set it from the
     * environment (ACTLINE_AUDIT_SIGNING_KEY), never in a committed file.
     */
    signing_key: z.string().min(1).optional(),
    /**
     * Ed25519 public key that anchors and retention events must be signed
     * with: PEM (SPKI) or the 32 raw bytes in base64. Verifying needs no
     * secret; when unset it is derived from signing_key, if set.
     */
    public_key: z.string().min(1).optional(),
    /**
     * How often the collector writes an anchor of every chain's head under
     * `<data_dir>/audit-anchors/` and to /metrics, such as '15m' or '1h'.
     * Off when unset. @default undefined
     */
    anchor_interval: z
      .string()
      .regex(DURATION, "a duration such as '30s', '15m', '1h' or '1d'")
      .refine((s) => !DURATION.test(s) || durationMs(s) >= 1000, 'at least 1s')
      .optional(),
    /**
     * How many of the periodic anchors the data directory keeps, the newest.
     * The newest anchor covers every row before its heads, so it proves all
     * an older one did; older ones only date a rewrite. @default 96
     */
    anchor_keep: z.number().int().min(1).max(1_000_000).default(96),
  })
  .strict()
  // A key that cannot be read fails at start, not at the first anchor; the message never holds the key.
  .superRefine((c, ctx) => {
    for (const [key, read] of [['signing_key', signingKey], ['public_key', publicKey]] as const) {
      const text = c[key]
      if (text === undefined) continue
      try {
        read(text)
      } catch (err) {
        if (!(err instanceof AnchorError)) throw err
        ctx.addIssue({ code: 'custom', path: [key], message: err.message })
      }
    }
  })

export type AuditConfig = z.output<typeof AuditConfig>

/** The retention events to believe: signed ones only, once a key is configured. */
export function retentionFilter(c: AuditConfig): RetentionFilter | undefined {
  const key = trustedKey(c)
  return key && retentionSigned(key)
}
