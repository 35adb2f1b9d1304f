/**
 * How an /api/v1 route is declared: its query schema (zod), the scope it
 * needs and a summary. The same declaration validates requests, gates them
 * (auth.ts) and becomes the route's entry in the OpenAPI document, so docs,
 * checks and code cannot drift apart.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { z } from 'zod'
import { parseQuery } from './query-params.ts'

export const SCOPES = ['ingest', 'read', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

export interface RouteDoc {
  summary: string
  description?: string
  query?: z.ZodType
  /** Content types of the 200 response; JSON when absent. */
  produces?: readonly string[]
  /** The 200 body when JSON. Documentation only: the tests parse real responses with it, strictly, so it cannot drift. */
  response?: z.ZodType
}

export interface Principal {
  /** The key's name from config, or `loopback` when no keys are configured. */
  name: string
  scopes: readonly Scope[]
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What a caller's key must grant; routes without one (health probes, metrics) are open. */
    scope?: Scope
    /** Set on /api/v1 routes; the OpenAPI document is built from it. */
    openapi?: RouteDoc
  }
  interface FastifyRequest {
    principal?: Principal
  }
}

export interface RouteSpec<Q extends z.ZodType> extends RouteDoc {
  method?: 'GET' | 'POST'
  url: string
  scope: Scope
  query: Q
}

/** Register a route whose handler receives its validated query. */
export function route<Q extends z.ZodType>(
  app: FastifyInstance,
  spec: RouteSpec<Q>,
  handler: (query: z.output<Q>, request: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
): void {
  const { method = 'GET', url, scope, ...doc } = spec
  app.route({
    method,
    url,
    config: { scope, openapi: doc },
    handler: (request, reply) => handler(parseQuery(spec.query, request.query), request, reply),
  })
}
