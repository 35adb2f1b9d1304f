/**
 * A node-postgres client whose 'error' events are heard. When a client's
 * connection ends while a query runs (the server restarted, the network
 * cut), node-postgres rejects the query and also emits 'error' on the
 * client; unheard, that event is an uncaught exception that ends the
 * process. The rejected query, or the next one, reports the failure.
 */
import pg from 'pg'

export function pgClient(config: pg.ClientConfig): pg.Client {
  const client = new pg.Client(config)
  client.on('error', () => {})
  return client
}
