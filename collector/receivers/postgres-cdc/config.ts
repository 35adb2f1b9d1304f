/** `receivers.postgres_cdc`: docs/configuration.md documents each key. */
import { z } from 'zod'
import { DEFAULT_REDACT } from '../../../schemas/redaction.ts'

const identifier = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/

export const PostgresCdcReceiverConfig = z
  .object({
    /** Capture row changes from PostgreSQL's logical replication. @default false */
    enabled: z.boolean().default(false),
    /** The database whose changes are captured (env ACTLINE_CDC_URL); the user needs REPLICATION, and to own the tables for the publication. */
    url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
    /** What is captured: `schema.table`, or `schema.*` for every table of a schema (PostgreSQL 15+). @default [] */
    tables: z
      .array(z.string().regex(new RegExp(`^${identifier.source.slice(1, -1)}\\.(${identifier.source.slice(1, -1)}|\\*)$`), 'must be schema.table or schema.*'))
      .default([]),
    /** The publication made for `tables` (kept in step with them at every start). @default actline */
    publication: z.string().regex(identifier, 'must be an unquoted identifier').default('actline'),
    /** The replication slot, made when missing: it holds WAL until the collector has stored the changes. @default actline */
    slot: z.string().regex(/^[a-z0-9_]{1,63}$/, 'must be lowercase letters, digits and _').default('actline'),
    /** Column names containing one of these words are stored as "[redacted]" in old and new values. @default [password, secret, token, key, ssn, card] */
    redact: z.array(z.string().min(1)).default([...DEFAULT_REDACT]),
    /** /readyz warns when the slot holds more WAL than this (the server keeps it until the collector confirms). @default 1073741824 (1 GiB) */
    warn_lag_bytes: z.number().int().min(0).default(1024 ** 3),
    /**
     * Installs, on each captured table, a statement-level trigger that tells
     * capture the writing session's role and application_name (a logical
     * message, no table written), so a change nobody tagged still says which
     * login made it. Off: such changes carry neither (the WAL has no session). @default false
     */
    session_context: z.boolean().default(false),
    /**
     * A value whose text is longer than this many bytes is stored as a marker
     * {type, bytes, sha256} instead (docs/cdc.md, "Values"). @default 8192
     */
    max_value_bytes: z.number().int().min(256).max(32_768).default(8192),
    /**
     * Revoke EXECUTE on pg_logical_emit_message from PUBLIC and grant it to
     * `context_roles` and the collector's user, so no other role can say who
     * made a change (needs a superuser; otherwise `cdc check` and the start
     * log say what a DBA runs). @default true
     */
    restrict_messages: z.boolean().default(true),
    /** The roles that may emit context messages (the app's). @default the owners of the captured tables */
    context_roles: z.array(z.string().min(1).max(63)).optional(),
    /** Seconds between checks of the captured tables: new tables of a `schema.*`, a key added or dropped. @default 10 */
    reconcile_seconds: z.number().int().min(1).max(3600).default(10),
    /** Activities written to the log at most per write: a huge transaction goes in pieces (its position is confirmed at its commit). @default 5000 */
    max_batch: z.number().int().min(1).max(100_000).default(5000),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!c.enabled) return
    if (!c.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'is required when enabled (or set ACTLINE_CDC_URL)' })
    if (c.tables.length === 0) ctx.addIssue({ code: 'custom', path: ['tables'], message: 'name at least one schema.table or schema.* when enabled' })
  })

export type PostgresCdcReceiverConfig = z.output<typeof PostgresCdcReceiverConfig>
