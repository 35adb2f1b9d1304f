/**
 * `receivers.postgres_cdc`: row changes from PostgreSQL's logical
 * replication, as `database` activities. It serves no route: it reads the
 * stream from when the server is ready until it closes, and hands each
 * committed transaction to the same Ingest as every receiver.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { ReceiverOptions } from '../receiver-type.ts'
import type { PostgresCdcReceiverConfig } from './config.ts'
import { createCdcStream } from './stream.ts'

export const postgresCdcReceiver: FastifyPluginAsync<ReceiverOptions<PostgresCdcReceiverConfig>> = async (app, { config, ingest, stats, stateDir }) => {
  const stream = createCdcStream(config, ingest, stats, app.log, stateDir)
  stats.cdc = { slot: config.slot, warnLagBytes: config.warn_lag_bytes, state: () => stream.state() }
  // Before listening: a server that cannot do capture (wal_level, a table without key) stops the start with one line.
  await stream.prepare()
  // Changes are read once the write-ahead log is open and taking ingest: from when the server listens.
  app.addHook('onListen', async () => stream.run())
  app.addHook('onClose', async () => {
    await stream.stop()
  })
}
