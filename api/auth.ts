/**
 * API keys with scopes. Every route names the scope it needs (route config
 * `scope`): ingest routes `ingest`, queries `read`, cache clearing `admin`
 * (which also grants `read`). Keys come from config and are held only as
 * SHA-256 digests, so a lookup compares digests, not secrets. With no keys
 * configured every caller is `loopback`, and config refuses a non-loopback
 * listen address (config.ts), so an open collector is never exposed by accident.
 */
import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'
import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ActlineError } from '../schemas/errors.ts'
import { SCOPES, type Principal, type Scope } from './route.ts'

export const ApiKey = z
  .object({
    /** Who the key belongs to: shown in audit events and used as the rate-limit key, never the secret itself. */
    name: z.string().min(1).max(128),
    /** The secret a client sends as `Authorization: Bearer <key>` or `X-API-Key: <key>`. At least 24 characters. */
    key: z.string().min(24, 'an API key must be at least 24 characters'),
    scopes: z.array(z.enum(SCOPES)).min(1),
  })
  .strict()

export const AuthConfig = z
  .object({
    /** No keys: every route is open, and the collector must listen on loopback. @default [] */
    keys: z.array(ApiKey).default([]),
    /** Failed authentications one client address may make per window before it is refused (429) without its key being checked. @default 10 */
    max_failures: z.number().int().min(1).default(10),
    /** The window of max_failures. @default 60000 */
    failure_window_ms: z.number().int().min(1000).default(60_000),
  })
  .strict()
  .refine((c) => new Set(c.keys.map((k) => k.name)).size === c.keys.length, { message: 'API key names must be unique', path: ['keys'] })
  .refine((c) => new Set(c.keys.map((k) => k.key)).size === c.keys.length, { message: 'two API keys have the same secret', path: ['keys'] })

export type AuthConfig = z.output<typeof AuthConfig>

const LOOPBACK: Principal = { name: 'loopback', scopes: SCOPES }

function digest(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

/** Who holds a key: the configured keys by their digest, so no key is kept or compared in the clear. */
export function keyring(config: AuthConfig): { size: number; lookup(key: string): Principal | undefined } {
  const byDigest = new Map(config.keys.map((k) => [digest(k.key), { name: k.name, scopes: k.scopes }]))
  return { size: byDigest.size, lookup: (key) => byDigest.get(digest(key)) }
}

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (header) {
    const bearer = /^Bearer\s+(.+)$/i.exec(header)
    return bearer?.[1]?.trim()
  }
  const apiKey = request.headers['x-api-key']
  return Array.isArray(apiKey) ? apiKey[0] : apiKey
}

/** Failed authentications, for /metrics. */
export interface AuthStats {
  failures: number
  /** Requests refused because their address failed too often. */
  blocked: number
}

declare module 'fastify' {
  interface FastifyInstance {
    authStats: AuthStats
  }
}

/** Client addresses remembered at once: a spray of addresses cannot grow memory without bound. */
const MAX_TRACKED_ADDRESSES = 10_000

/**
 * Failed authentications per client address, in a window that runs from the
 * first failure (it does not slide): a guesser is stopped after
 * max_failures without its keys being checked. One for each listener.
 */
export function failureLimiter(config: Pick<AuthConfig, 'max_failures' | 'failure_window_ms'>): {
  /** Seconds until the address may try again, or undefined while it may. */
  blockedFor(address: string): number | undefined
  /** Counts a failure of the address; returns how many it has made in the window. */
  fail(address: string): number
} {
  const failures = new LRUCache<string, { count: number }>({ max: MAX_TRACKED_ADDRESSES, ttl: config.failure_window_ms, ttlAutopurge: false })
  return {
    blockedFor(address) {
      const seen = failures.get(address)
      if (!seen || seen.count < config.max_failures) return undefined
      return Math.max(1, Math.ceil(failures.getRemainingTTL(address) / 1000))
    },
    fail(address) {
      const seen = failures.get(address)
      if (seen) return ++seen.count
      failures.set(address, { count: 1 })
      return 1
    },
  }
}

export function grants(principal: Principal, scope: Scope): boolean {
  return principal.scopes.includes(scope) || (scope === 'read' && principal.scopes.includes('admin'))
}

export const auth = fp<{ config: AuthConfig }>(
  async (app, { config }) => {
    const keys = keyring(config)
    const stats: AuthStats = { failures: 0, blocked: 0 }
    // A guesser is stopped after max_failures, and logged, without a line per guess.
    const failures = failureLimiter(config)
    app.decorate('authStats', stats)
    app.decorateRequest('principal', undefined)
    app.addHook('onRequest', async (request) => {
      const scope = request.routeOptions.config?.scope
      if (keys.size === 0) {
        request.principal = LOOPBACK
        return
      }
      const address = request.ip
      const retryAfter = scope ? failures.blockedFor(address) : undefined
      if (retryAfter !== undefined) {
        stats.blocked++
        throw new ActlineError(
          'ACT_ERR_RATE_LIMITED',
          `too many failed authentications from this address; retry in ${retryAfter} s with a valid key`,
          { retry_after_seconds: retryAfter },
          { 'retry-after': String(retryAfter) },
        )
      }
      const key = presentedKey(request)
      const principal = key === undefined ? undefined : keys.lookup(key)
      if (principal) request.principal = principal
      if (!scope) return
      if (!principal) {
        stats.failures++
        const count = failures.fail(address)
        const reason = key === undefined ? 'no key' : 'unknown key'
        if (count < config.max_failures) {
          request.log.warn({ address, route: request.routeOptions.url, reason, failures: count }, `authentication failed: ${reason}`)
        } else {
          request.log.warn({ address, failures: count, window_ms: config.failure_window_ms }, 'authentication failed too often from this address; refusing it (429) for the rest of the window')
        }
        throw new ActlineError(
          'ACT_ERR_UNAUTHORIZED',
          key === undefined ? 'this route needs an API key: send Authorization: Bearer <key> or X-API-Key' : 'the API key is not valid',
          { required_scope: scope },
          { 'www-authenticate': 'Bearer realm="actline"' },
        )
      }
      if (!grants(principal, scope)) {
        throw new ActlineError('ACT_ERR_FORBIDDEN', `the API key '${principal.name}' lacks the '${scope}' scope`, {
          required_scope: scope,
          granted_scopes: principal.scopes,
        })
      }
    })
  },
  { name: 'actline-auth' },
)
