/** The process's logger: pino, with secrets redacted whatever logs them. */
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'

/** Secrets that must never reach a log line. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  '*.password',
  'config.exporters.*.password',
]

export function createLogger(level: string): FastifyBaseLogger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '***' } }) as unknown as FastifyBaseLogger
}
