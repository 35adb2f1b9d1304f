/** The process's logger: pino, with secrets redacted whatever logs them. */
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'

/** Secrets that must never reach a log line. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  '*.password',
  'config.exporters.*.password',
  '*.signing_key',
  'config.audit.signing_key',
]

/** `to: 'stderr'` for commands whose standard output is their answer (`--json`). */
export function createLogger(level: string, to: 'stdout' | 'stderr' = 'stdout'): FastifyBaseLogger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: '***' } }
  return (to === 'stdout' ? pino(options) : pino(options, pino.destination(2))) as unknown as FastifyBaseLogger
}
