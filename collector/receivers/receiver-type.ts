/**
 * A receiver type, as the registry (./index.ts) lists it: a Fastify plugin
 * serving its routes, its config section with defaults, and whether the
 * section turns it on. Every receiver hands what it accepted to the same
 * Ingest, through admission.ts.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { z } from 'zod'
import type { Ingest } from '../../schemas/component.ts'
import type { ReceiverStats } from './stats.ts'

export interface ReceiverOptions<Config> {
  config: Config
  ingest: Ingest
  stats: ReceiverStats
  /** A directory of the collector's data dir for what a receiver must remember across restarts; it may not exist yet. */
  stateDir: string
}

export interface ReceiverType<Config = unknown> {
  /** Its name: the config section `receivers.<type>`. */
  readonly type: string
  readonly config: z.ZodType<Config>
  enabled(config: Config): boolean
  readonly plugin: FastifyPluginAsync<ReceiverOptions<Config>>
  /** The tables whose row changes it records (`schema.table`, `schema.*`): the audit route keeps one copy of each change (pipeline.audit_route.row_change_owner). */
  captures?(config: Config): readonly string[]
  /** Environment variables that set a key of its section (docs/configuration.md lists them). */
  readonly env?: Readonly<Record<string, { key: string; type: 'string' | 'number' }>>
}

export function defineReceiver<Config>(type: ReceiverType<Config>): ReceiverType<Config> {
  return type
}
