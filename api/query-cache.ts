/**
 * Caches rendered query responses (encoded JSON bytes, so a hit costs a map
 * lookup and a socket write: no serializing, not even to UTF-8). A result whose range ended a while ago changes only by late
 * arrivals and lives `closed_ttl_ms`; one that reaches into the open present
 * lives `ttl_ms`. Bounded by entries and by bytes, least recently used first.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { LRUCache } from 'lru-cache'
import { z } from 'zod'

export const QueryCacheConfig = z
  .object({
    /** @default true */
    enabled: z.boolean().default(true),
    /** @default 1000 */
    max_entries: z.number().int().min(1).default(1_000),
    /** Bytes of cached responses, at most. @default 67108864 (64 MiB) */
    max_bytes: z.number().int().min(1024).default(64 * 1024 * 1024),
    /** Life of a result whose range reaches into the last `closed_after_ms`. @default 10000 */
    ttl_ms: z.number().int().min(1).default(10_000),
    /** Life of a result over a range that ended before that. @default 300000 */
    closed_ttl_ms: z.number().int().min(1).default(300_000),
    /** How long after its end a range counts as closed: late events land within it. @default 60000 */
    closed_after_ms: z.number().int().min(0).default(60_000),
  })
  .strict()

export type QueryCacheConfig = z.output<typeof QueryCacheConfig>

export const CacheStatsResponse = z
  .object({
    hits: z.number().int(),
    misses: z.number().int(),
    size: z.number().int().meta({ description: 'entries cached' }),
    bytes: z.number().int().meta({ description: 'bytes of cached bodies' }),
    hit_rate: z.number().nullable().meta({ description: 'hits / (hits + misses); null before the first lookup' }),
  })
  .strict()
export type CacheStats = z.output<typeof CacheStatsResponse>

export interface QueryCache {
  /** The cached body for `key`, or `compute()`'s, cached until the TTL its range earns. */
  get(key: string, rangeEnd: number, compute: () => Promise<Buffer>): Promise<{ body: Buffer; hit: boolean }>
  stats(): CacheStats
  clear(): number
}

export function createQueryCache(config: QueryCacheConfig): QueryCache {
  const cache = new LRUCache<string, Buffer>({
    max: config.max_entries,
    maxSize: config.max_bytes,
    sizeCalculation: (body) => Math.max(1, body.byteLength),
    ttl: config.ttl_ms,
    // An expired entry is a miss, and is dropped as it is found.
    allowStale: false,
  })
  /** Requests for a key already being computed wait for that one instead of running the query again. */
  const inflight = new Map<string, Promise<Buffer>>()
  let hits = 0
  let misses = 0

  return {
    async get(key, rangeEnd, compute) {
      if (!config.enabled) return { body: await compute(), hit: false }
      const cached = cache.get(key)
      if (cached !== undefined) {
        hits++
        return { body: cached, hit: true }
      }
      misses++
      let pending = inflight.get(key)
      if (!pending) {
        pending = compute().finally(() => inflight.delete(key))
        inflight.set(key, pending)
        const closed = rangeEnd <= Date.now() - config.closed_after_ms
        pending.then((body) => cache.set(key, body, { ttl: closed ? config.closed_ttl_ms : config.ttl_ms }), () => {})
      }
      return { body: await pending, hit: false }
    },
    stats() {
      const total = hits + misses
      return { hits, misses, size: cache.size, bytes: cache.calculatedSize, hit_rate: total ? hits / total : null }
    },
    clear() {
      const n = cache.size
      cache.clear()
      return n
    },
  }
}

/** The route and its query parameters in a canonical order: `?b=1&a=2` and `?a=2&b=1` share an entry. */
export function cacheKey(request: FastifyRequest): string {
  const [path, search = ''] = request.url.split('?', 2)
  const params = new URLSearchParams(search)
  params.sort()
  return `${path}?${params}`
}

/** Reply with `compute()`'s result as JSON, from the cache when it holds it (`x-cache: hit`). */
export async function replyCached(
  cache: QueryCache,
  request: FastifyRequest,
  reply: FastifyReply,
  rangeEnd: number,
  compute: () => Promise<unknown>,
): Promise<FastifyReply> {
  const { body, hit } = await cache.get(cacheKey(request), rangeEnd, async () => Buffer.from(JSON.stringify(await compute())))
  return reply.type('application/json; charset=utf-8').header('x-cache', hit ? 'hit' : 'miss').send(body)
}
