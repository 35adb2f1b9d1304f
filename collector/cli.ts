/**
 * The `actline` command.
 *   actline start [--config FILE]     run the collector (ACTLINE_CONFIG also names the file)
 *   actline api [--config FILE]       serve only the query API (/api/v1) from the configured stores
 *   actline validate-config FILE      check a config file; exit 1 with the errors
 */
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, type Config } from './config.ts'
import { createCollector, createLogger } from './collector.ts'
import { createApiServer } from './api-server.ts'

const USAGE = `usage:
  actline start [--config FILE]     run the collector (or set ACTLINE_CONFIG)
  actline api [--config FILE]       serve only the query API (/api/v1) from the configured stores
  actline validate-config FILE      check a config file and exit
  actline --help`

export async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
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
    default:
      console.error(`unknown command '${command}'\n${USAGE}`)
      return 2
  }
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
  try {
    await collector.start()
  } catch (err) {
    logger.fatal({ err }, `${mode === 'api' ? 'query API' : 'collector'} failed to start: ${(err as Error).message}`)
    return 1
  }
  return new Promise<number>(() => {}) // runs until a signal
}
