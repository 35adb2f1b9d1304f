/**
 * The OpenAPI 3.1 document, built from the routes as they register: each
 * /api/v1 route's zod query schema becomes its parameters (z.toJSONSchema),
 * its response schema its 200 body, its scope its security requirement.
 * Written here rather than through @fastify/swagger because zod, not Fastify's JSON Schema, validates these
 * routes; a shim translating one into the other would be the larger code.
 */
import type { FastifyInstance, RouteOptions } from 'fastify'
import { z } from 'zod'
import type { RouteDoc, Scope } from './route.ts'

interface Collected {
  method: string
  url: string
  scope?: Scope
  doc: RouteDoc
}

const ERROR = { $ref: '#/components/schemas/Error' }

function parameters(query: z.ZodType | undefined): object[] {
  if (!query) return []
  const schema = z.toJSONSchema(query, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, Record<string, unknown>>; required?: string[] }
  return Object.entries(schema.properties ?? {}).map(([name, { description, ...property }]) => ({
    name,
    in: 'query',
    required: schema.required?.includes(name) ?? false,
    ...(description !== undefined && { description }),
    schema: property,
  }))
}

function body(schema: z.ZodType): object {
  const { $schema: _s, ...json } = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as Record<string, unknown>
  return json
}

function operation(route: Collected): object {
  const produces = route.doc.produces ?? ['application/json']
  return {
    summary: route.doc.summary,
    ...(route.doc.description && { description: route.doc.description }),
    parameters: parameters(route.doc.query),
    ...(route.scope && { security: [{ apiKey: [route.scope] }, { bearer: [route.scope] }], 'x-required-scope': route.scope }),
    responses: {
      200: {
        description: 'OK',
        content: Object.fromEntries(produces.map((type) => [type, type.startsWith('application/json') && route.doc.response ? { schema: body(route.doc.response) } : {}])),
      },
      400: { description: 'Invalid query string', content: { 'application/json': { schema: ERROR } } },
      401: { description: 'No or unknown API key', content: { 'application/json': { schema: ERROR } } },
      403: { description: 'The key lacks the scope', content: { 'application/json': { schema: ERROR } } },
      429: { description: 'Rate limit exceeded for this key', content: { 'application/json': { schema: ERROR } } },
    },
  }
}

/** Collect the routes registered after this call in `app`'s context, and serve the document at `url`. */
export function openapi(app: FastifyInstance, info: { title: string; version: string }, url: string): void {
  const routes: Collected[] = []
  app.addHook('onRoute', (r: RouteOptions) => {
    const doc = r.config?.openapi
    if (!doc) return
    for (const method of [r.method].flat()) {
      if (method !== 'HEAD') routes.push({ method: method.toLowerCase(), url: r.url, ...(r.config?.scope && { scope: r.config.scope }), doc })
    }
  })
  let document: object | undefined
  app.get(url, async () => {
    document ??= {
      openapi: '3.1.0',
      info,
      paths: routes.reduce<Record<string, Record<string, object>>>((paths, r) => {
        ;(paths[r.url] ??= {})[r.method] = operation(r)
        return paths
      }, {}),
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          bearer: { type: 'http', scheme: 'bearer' },
        },
        schemas: {
          Error: {
            type: 'object',
            required: ['error', 'message', 'details'],
            properties: { error: { type: 'string' }, message: { type: 'string' }, details: { type: 'object' } },
          },
        },
      },
    }
    return document
  })
}
