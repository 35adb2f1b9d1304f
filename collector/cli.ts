/**
 * The `actline` command.
 *   actline start [--config FILE]     run the collector (ACTLINE_CONFIG also names the file)
 *   actline api [--config FILE]       serve only the query API (/api/v1) from the configured stores
 *   actline validate-config FILE      check a config file; exit 1 with the errors
 *   actline dead-letter list|replay   what the stores refused, and sending it again
 *   actline demo [--data-dir DIR]     the collector on embedded stores with synthetic traffic
 *   actline cdc status|check|drop-slot  change-data capture's slot and tables on the server
 *   actline audit verify|anchor|retain  the audit trail's hash chains (docs/audit-integrity.md)
 *   actline triggers scan --db URL    the toolkit for removing a database's audit triggers
 */
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { ConfigError, loadConfig, PID_FILE, type Config } from './config.ts'
import { auditCommand } from '../exporters/index.ts'
import { livePid } from '../lib/pid-file.ts'
import { createCollector } from './collector.ts'
import { createLogger } from './server/logger.ts'
import { createApiServer } from './api-server.ts'
import { listDeadLetters, replayDeadLetters } from './dead-letter-cli.ts'
import { runDemo } from './demo/demo.ts'
import { cdcCommand } from './receivers/index.ts'
import { triggersCommand } from '../toolkit/triggers/cli.ts'

const USAGE = `usage:
  actline start [--config FILE]     run the collector (or set ACTLINE_CONFIG)
  actline api [--config FILE]       serve only the query API (/api/v1) from the configured stores
  actline validate-config FILE      check a config file and exit
  actline dead-letter list [--json]                            rows the stores refused, by exporter and reason
  actline dead-letter replay [--exporter E] [--dry-run] [--json]
                                    send them again once the cause is fixed; each row is stored once,
                                    however often replay runs (embedded stores: stop the collector first)
  actline demo [--data-dir DIR] [--days 90] [--per-day 3000] [--rate 5] [--port 4318] [--clickhouse-port 8123]
                                    the collector on embedded stores with 90 days of synthetic history,
                                    then live traffic; in a temporary directory, removed on exit, unless --data-dir
  actline cdc status|check|drop-slot [--config FILE] [--db URL] [--json] [--yes]
                                    change-data capture's slot on the server: the WAL it holds, whether each
                                    table can be captured (and with which old values), and dropping it
  actline audit verify|anchor|retain [--tenant T] [--since DATE] [--anchor FILE] [--out FILE] [--before YYYY-MM] [--json]
                                    the audit trail's hash chains: verify them, anchor their heads, drop old months
                                    with a trace (actline audit --help)
  actline triggers scan --db URL [--json]
                                    a database's triggers, what each does, and which the pipeline replaces
                                    (actline triggers --help)
  actline --help

example:
  actline dead-letter replay --exporter postgres --dry-run --config collector.yaml`

export async function main(argv: string[]): Promise<number> {
  // The toolkit and the audit tools have their own options; they read their own arguments.
  if (argv[0] === 'triggers') return triggersCommand(argv.slice(1))
  if (argv[0] === 'audit') return audit(argv.slice(1))
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      exporter: { type: 'string' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
      'data-dir': { type: 'string' },
      days: { type: 'string' },
      'per-day': { type: 'string' },
      rate: { type: 'string' },
      port: { type: 'string' },
      'clickhouse-port': { type: 'string' },
      seed: { type: 'string' },
      db: { type: 'string' },
      yes: { type: 'boolean' },
    },
  })
  const [command, ...rest] = positionals
  if (values.help || !command) {
    console.log(USAGE)
    return command || values.help ? 0 : 2
  }
  switch (command) {
    case 'validate-config': {
      const file = rest[0] ?? values.config
      if (!file) {
        console.error(`validate-config needs a file\n${USAGE}`)
        return 2
      }
      const config = tryLoad(file)
      if (!config) return 1
      console.log(`${file}: ok`)
      return 0
    }
    case 'start':
      return start(values.config ?? process.env.ACTLINE_CONFIG)
    case 'api':
      return start(values.config ?? process.env.ACTLINE_CONFIG, 'api')
    case 'dead-letter':
      return deadLetter(rest[0], values)
    case 'demo':
      return demo(values)
    case 'cdc': {
      const config = tryLoad(values.config ?? process.env.ACTLINE_CONFIG)
      if (!config) return 1
      return cdcCommand(rest[0], config.receivers.postgres_cdc, { ...(values.db && { db: values.db }), json: values.json ?? false, yes: values.yes ?? false })
    }
    default:
      console.error(`unknown command '${command}'\n${USAGE}`)
      return 2
  }
}

async function deadLetter(sub: string | undefined, values: { config?: string; exporter?: string; 'dry-run'?: boolean; json?: boolean }): Promise<number> {
  if (sub !== 'list' && sub !== 'replay') {
    console.error(`dead-letter needs 'list' or 'replay'\n${USAGE}`)
    return 2
  }
  const config = tryLoad(values.config ?? process.env.ACTLINE_CONFIG)
  if (!config) return 1
  if (sub === 'list') {
    const list = listDeadLetters(config)
    if (values.json) console.log(JSON.stringify(list))
    else {
      if (list.exporters.length === 0 && list.damaged_log_regions === 0) console.log('no dead-lettered rows')
      for (const e of list.exporters) {
        console.log(`${e.exporter}: ${e.rows} rows${e.first ? ` (${e.first} .. ${e.last})` : ''}`)
        for (const r of e.reasons) console.log(`  ${r.rows}  ${r.reason}`)
      }
      if (list.damaged_log_regions) console.log(`write-ahead log: ${list.damaged_log_regions} damaged regions (dead-letter/wal.ndjson; raw bytes, not replayable)`)
    }
    return 0
  }
  const logger = createLogger('warn')
  try {
    const results = await replayDeadLetters(config, { ...(values.exporter && { exporter: values.exporter }), dryRun: values['dry-run'] ?? false, progress: (t) => !values.json && console.error(t) }, logger)
    if (values.json) console.log(JSON.stringify({ dry_run: values['dry-run'] ?? false, exporters: results }))
    else {
      for (const r of results) {
        const verb = values['dry-run'] ? 'would replay' : 'replayed'
        console.log(`${r.exporter}: ${r.rows} rows: ${verb} ${r.replayed}, already stored ${r.already_stored}${r.failed ? `, failed again ${r.failed} (kept in the file)` : ''}`)
      }
    }
    return results.some((r) => r.failed > 0) ? 1 : 0
  } catch (err) {
    console.error(`dead-letter replay: ${(err as Error).message}`)
    return 1
  }
}

/** A non-negative whole number option, or a one-line error naming it. */
function count(values: Record<string, unknown>, name: string, fallback: number, max: number): number {
  const raw = values[name]
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > max) throw new UsageError(`--${name} must be a whole number from 0 to ${max}, got '${String(raw)}'`)
  return n
}

class UsageError extends Error {}

async function demo(values: Record<string, unknown>): Promise<number> {
  let options
  try {
    options = {
      ...(typeof values['data-dir'] === 'string' && { dataDir: values['data-dir'] }),
      days: count(values, 'days', 90, 3650),
      perDay: count(values, 'per-day', 3000, 1_000_000),
      rate: count(values, 'rate', 5, 10_000),
      port: count(values, 'port', 4318, 65535),
      clickhousePort: count(values, 'clickhouse-port', 8123, 65535),
      seed: count(values, 'seed', 1, 2 ** 31),
      out: process.stdout,
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`demo: ${err.message}`)
    return 2
  }
  const stop = new AbortController()
  const onSignal = () => (stop.signal.aborted ? process.exit(130) : stop.abort())
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    await runDemo(options, stop.signal)
    return 0
  } catch (err) {
    if (stop.signal.aborted && (err as Error).name === 'AbortError') return 0
    const e = err as NodeJS.ErrnoException
    console.error(`demo: ${e.code === 'EADDRINUSE' ? `${e.message}: another collector is running there; pick others with --port and --clickhouse-port` : e.message}`)
    return 1
  }
}

async function audit(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: false, allowPositionals: true })
  if (values.help) return auditCommand(argv, undefined)
  const config = tryLoad((values.config as string | undefined) ?? process.env.ACTLINE_CONFIG)
  if (!config) return 1
  return auditCommand(argv, { postgres: config.exporters.postgres, audit: config.audit, logger: createLogger('warn', 'stderr'), holder: livePid(join(config.data_dir, PID_FILE)) })
}

function tryLoad(file: string | undefined): Config | undefined {
  try {
    return loadConfig(file)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    return undefined
  }
}

async function start(file: string | undefined, mode: 'collector' | 'api' = 'collector'): Promise<number> {
  const config = tryLoad(file)
  if (!config) return 1
  const logger = createLogger(config.server.log_level)
  const collector = mode === 'api' ? await createApiServer(config, logger) : await createCollector(config, { logger })
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    // A second signal means the operator will not wait: leave now.
    if (++signals > 1) process.exit(130)
    logger.info({ signal }, 'signal received')
    // Backstop: whatever hangs, the process is gone shortly after the budget.
    setTimeout(() => {
      logger.error('shutdown did not finish in time, exiting')
      process.exit(1)
    }, config.server.shutdown_timeout_ms + 2_000).unref()
    collector.shutdown().then(() => process.exit(0), (err) => {
      logger.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  // Last resort: a bug that escapes every handler leaves the process in a
  // state nothing vouches for. Say so in the log's own format and exit 1 for
  // the supervisor to restart; what was acknowledged is in the write-ahead log.
  const fatal = (what: string) => (err: unknown) => {
    logger.fatal({ err }, `${what}: exiting (acknowledged activities are in the write-ahead log; a restart goes on from it)`)
    process.exit(1)
  }
  process.on('uncaughtException', fatal('uncaught exception'))
  process.on('unhandledRejection', fatal('unhandled promise rejection'))
  try {
    await collector.start()
  } catch (err) {
    logger.fatal({ err }, `${mode === 'api' ? 'query API' : 'collector'} failed to start: ${(err as Error).message}`)
    return 1
  }
  return new Promise<number>(() => {}) // runs until a signal
}
