/**
 * The collector's configuration: one object, validated once at start.
 * Each component owns its schema and defaults; this file only composes them,
 * and resolves precedence in one place: environment over file over defaults
 * (the environment is how a deployment overrides an image's baked-in file).
 * docs/configuration.md documents every key.
 */
import { readFileSync } from 'node:fs'
import { resolve, join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { AuditRouteConfig } from './pipeline/audit-route.ts'
import { ClickHouseHttpConfig } from './extensions/clickhouse-http/config.ts'
import { RECEIVERS } from './receivers/index.ts'
import { RecentIdsConfig } from './pipeline/dedup.ts'
import { BatchSettings } from './pipeline/batch-processor.ts'
import { MemoryLimiterConfig } from './pipeline/memory-limiter.ts'
import { RetryConfig } from './pipeline/retry.ts'
import { WriteAheadLogConfig } from './wal/write-ahead-log.ts'
import { EXPORTERS, type ExporterTypes } from '../exporters/index.ts'
import { redactUrl } from '../lib/redact.ts'
import { AuthConfig } from '../api/auth.ts'
import { ApiConfig } from '../api/query-api.ts'
import { AuditConfig } from './audit/config.ts'

export const ServerConfig = z
  .object({
    /** Loopback by default: nothing is exposed until you choose to. @default '127.0.0.1' */
    host: z.string().min(1).default('127.0.0.1'),
    /** OTLP/HTTP's registered port. @default 4318 */
    port: z.number().int().min(0).max(65535).default(4318),
    /** Longest a graceful shutdown may take before the process exits anyway. @default 15000 */
    shutdown_timeout_ms: z.number().int().min(100).default(15_000),
    /** @default 'info' */
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** A request's headers must arrive within this. @default 10000 */
    headers_timeout_ms: z.number().int().min(1000).default(10_000),
    /** A whole request (headers and body) must arrive within this: 408, then the connection is closed. @default 30000 */
    request_timeout_ms: z.number().int().min(1000).default(30_000),
    /** An idle keep-alive connection is closed after this. @default 5000 */
    keep_alive_timeout_ms: z.number().int().min(100).default(5_000),
    /**
     * Origins whose web pages may call the collector's listeners (this one and
     * clickhouse_http) from a browser; `*` any. A page of another origin is
     * refused (403) by default. @default []
     */
    allowed_origins: z.array(z.string().regex(/^(\*|https?:\/\/[^/\s]+)$/, 'an origin is scheme://host[:port], or *')).default([]),
    /** Host names clients reach the listeners by, besides IP addresses and localhost (DNS rebinding is refused); `*` any. @default [] */
    allowed_hosts: z.array(z.string().min(1)).default([]),
    /** ClickHouse's HTTP interface for the embedded store, read-only (collector/extensions/clickhouse-http). */
    clickhouse_http: ClickHouseHttpConfig.prefault({}),
  })
  .strict()
  .refine((c) => c.request_timeout_ms >= c.headers_timeout_ms, {
    message: 'request_timeout_ms must be >= headers_timeout_ms',
    path: ['request_timeout_ms'],
  })

type Sections<T extends Record<string, { config: z.ZodType }>> = { [K in keyof T]: z.output<T[K]['config']> }

/** A section with one key per registered component type, each its own schema and defaults. */
function sectionsOf<T extends Record<string, { config: z.ZodType }>>(types: T): z.ZodType<Sections<T>> {
  return z.strictObject(Object.fromEntries(Object.entries(types).map(([name, t]) => [name, t.config.prefault({})]))) as unknown as z.ZodType<Sections<T>>
}

// `.prefault({})` runs an absent section through its schema, so every
// default lives once, beside its component.
export const ConfigSchema = z
  .object({
    /** Where the embedded stores keep their files. @default './data' */
    data_dir: z.string().min(1).default('./data'),
    server: ServerConfig.prefault({}),
    receivers: sectionsOf(RECEIVERS).prefault({}),
    wal: WriteAheadLogConfig.prefault({}),
    pipeline: z
      .object({
        memory_limiter: MemoryLimiterConfig.prefault({}),
        // Every exporter's batch; `exporters.<name>` overrides it for one (collector/components.ts resolves them).
        batch: BatchSettings.extend({
          exporters: z.strictObject(Object.fromEntries(Object.keys(EXPORTERS).map((name) => [name, BatchSettings.optional()])) as Record<keyof typeof EXPORTERS, z.ZodOptional<typeof BatchSettings>>).prefault({}),
        }).prefault({}),
        retry: RetryConfig.prefault({}),
        audit_route: AuditRouteConfig.prefault({}),
        dedup: RecentIdsConfig.prefault({}),
      })
      .strict()
      .prefault({}),
    exporters: sectionsOf(EXPORTERS).prefault({}),
    auth: AuthConfig.prefault({}),
    api: ApiConfig.prefault({}),
    audit: AuditConfig.prefault({}),
  })
  .strict()
  .refine((c) => Object.values(c.exporters).some((e) => e.enabled), {
    message: 'at least one exporter must be enabled',
    path: ['exporters'],
  })
  // Without keys every route is open: only this machine may reach it.
  .refine((c) => c.auth.keys.length > 0 || isLoopback(c.server.host), {
    message: 'listening beyond loopback needs API keys: add auth.keys, or keep server.host on 127.0.0.1 / ::1',
    path: ['server', 'host'],
  })
  .refine((c) => c.auth.keys.length > 0 || !c.server.clickhouse_http.enabled || isLoopback(c.server.clickhouse_http.host), {
    message: 'serving the ClickHouse endpoint beyond loopback needs API keys: add auth.keys, or keep server.clickhouse_http.host on 127.0.0.1 / ::1',
    path: ['server', 'clickhouse_http', 'host'],
  })

/** In data_dir: names the process holding the embedded stores (lib/pid-file.ts). */
export const PID_FILE = 'actline.pid'

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
}

/** The validated config, with every store path resolved to an absolute one. */
export type Config = Omit<z.output<typeof ConfigSchema>, 'wal' | 'exporters'> & {
  wal: z.output<typeof ConfigSchema>['wal'] & { dir: string }
  exporters: { [K in keyof ExporterTypes]: ReturnType<ExporterTypes[K]['resolve']> }
}

/** Environment variables that override a key (each exporter lists its own); docs/configuration.md lists them all. */
export const ENV_OVERRIDES: Record<string, { path: string[]; type: 'string' | 'number' }> = {
  ACTLINE_HOST: { path: ['server', 'host'], type: 'string' },
  ACTLINE_PORT: { path: ['server', 'port'], type: 'number' },
  ACTLINE_LOG_LEVEL: { path: ['server', 'log_level'], type: 'string' },
  ACTLINE_DATA_DIR: { path: ['data_dir'], type: 'string' },
  ACTLINE_WAL_DURABILITY: { path: ['wal', 'durability'], type: 'string' },
  ACTLINE_CLICKHOUSE_HTTP_PORT: { path: ['server', 'clickhouse_http', 'port'], type: 'number' },
  ACTLINE_AUDIT_SIGNING_KEY: { path: ['audit', 'signing_key'], type: 'string' },
  ...Object.fromEntries(
    Object.values(EXPORTERS).flatMap((t) => Object.entries(t.env ?? {}).map(([name, { key, type }]) => [name, { path: ['exporters', t.type, key], type }])),
  ),
  ...Object.fromEntries(
    Object.values(RECEIVERS).flatMap((t) => Object.entries((t as { env?: Record<string, { key: string; type: 'string' | 'number' }> }).env ?? {}).map(([name, { key, type }]) => [name, { path: ['receivers', t.type, key], type }])),
  ),
}

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message)
    this.name = 'ConfigError'
  }
}

/** Read a YAML file (or none) plus the environment into a validated config. */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): Config {
  let raw: unknown = {}
  if (file) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    try {
      raw = parseYaml(text) ?? {}
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`)
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`config file ${file} must hold a mapping at the top level`)
    raw = expandEnv(raw, env, file)
  }
  return parseConfig(raw, env, file)
}

/** Validate an already-parsed object; the environment overrides it. */
export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = {}, source = 'config'): Config {
  const merged = structuredClone(raw ?? {}) as Record<string, unknown>
  const fromEnv = new Map<string, string>()
  for (const [name, { path, type }] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name]
    if (value === undefined || value === '') continue
    setPath(merged, path, type === 'number' && /^\d+$/.test(value) ? Number(value) : value)
    fromEnv.set(path.join('.'), name)
  }
  const result = ConfigSchema.safeParse(merged)
  if (!result.success) {
    const issues = result.error.issues.map((i) => {
      const path = i.path.join('.') || '(top level)'
      const envName = fromEnv.get(path)
      const got = shown(i.path.map(String), getPath(merged, i.path))
      return { path, message: `${i.message}${got}${envName ? ` (from ${envName})` : ''}` }
    })
    throw new ConfigError(`invalid ${source}:\n${issues.map((i) => `  - \`${i.path}\`: ${i.message}`).join('\n')}`, issues)
  }
  const c = result.data
  const dataDir = resolve(c.data_dir)
  return {
    ...c,
    data_dir: dataDir,
    wal: { ...c.wal, dir: resolve(c.wal.dir ?? join(dataDir, 'wal')) },
    exporters: Object.fromEntries(
      Object.entries(EXPORTERS).map(([name, t]) => [name, (t.resolve as (c: unknown, d: string) => unknown)(c.exporters[name as keyof ExporterTypes], dataDir)]),
    ) as Config['exporters'],
  }
}

/**
 * `${env:NAME}` in a string value is replaced by that variable, as in the
 * OpenTelemetry Collector's config, so secrets (API keys, passwords) stay out
 * of the file. An unset variable is an error, not an empty secret.
 */
function expandEnv(value: unknown, env: NodeJS.ProcessEnv, file: string, path: string[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name]
      if (v === undefined) throw new ConfigError(`invalid ${file}:\n  - \`${path.join('.')}\`: environment variable ${name} is not set`, [{ path: path.join('.'), message: `environment variable ${name} is not set` }])
      return v
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, file, [...path, String(i)]))
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, file, [...path, k])]))
  return value
}

function getPath(target: unknown, path: readonly PropertyKey[]): unknown {
  let node = target
  for (const key of path) node = typeof node === 'object' && node !== null ? (node as Record<PropertyKey, unknown>)[key] : undefined
  return node
}

const SECRET_KEYS = new Set(['password', 'key', 'signing_key'])

/** The bad value for an error message; never a secret (URLs may hold passwords). */
function shown(path: string[], value: unknown): string {
  if (value === undefined || (typeof value === 'object' && value !== null)) return ''
  const key = path.at(-1) ?? ''
  // Passwords, API keys (auth.keys[].key) and the audit signing key.
  if (SECRET_KEYS.has(key)) return ''
  if (key === 'url' && typeof value === 'string') return ` (got ${JSON.stringify(redactUrl(value))})`
  return ` (got ${JSON.stringify(value)})`
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {}
    node = node[key] as Record<string, unknown>
  }
  node[path.at(-1)!] = value
}
