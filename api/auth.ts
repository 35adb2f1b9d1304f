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
  })
  .strict()
  .refine((c) => new Set(c.keys.map((k) => k.name)).size === c.keys.length, { message: 'API key names must be unique', path: ['keys'] })
  .refine((c) => new Set(c.keys.map((k) => k.key)).size === c.keys.length, { message: 'two API keys have the same secret', path: ['keys'] })

export type AuthConfig = z.output<typeof AuthConfig>

const LOOPBACK: Principal = { name: 'loopback', scopes: SCOPES }

function digest(key: string): string {
  return createHash('sha256').update(key).digest('hex')
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

export function grants(principal: Principal, scope: Scope): boolean {
  return principal.scopes.includes(scope) || (scope === 'read' && principal.scopes.includes('admin'))
}

export const auth = fp<{ config: AuthConfig }>(
  async (app, { config }) => {
    const byDigest = new Map(config.keys.map((k) => [digest(k.key), { name: k.name, scopes: k.scopes }]))
    app.decorateRequest('principal', undefined)
    app.addHook('onRequest', async (request) => {
      const scope = request.routeOptions.config?.scope
      if (byDigest.size === 0) {
        request.principal = LOOPBACK
        return
      }
      const key = presentedKey(request)
      const principal = key === undefined ? undefined : byDigest.get(digest(key))
      if (principal) request.principal = principal
      if (!scope) return
      if (!principal) {
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
