/** API keys for tests of scopes: one per scope, under the names a deployment gives them. */
export const KEYS = {
  ingest: 'ingest-key-0123456789abcdef',
  read: 'read-key-0123456789abcdef0123',
  admin: 'admin-key-0123456789abcdef012',
} as const

type Key = { name: string; key: string; scopes: string[] }

/** `auth` holding KEYS (the app ingests, Grafana reads, on-call administers), and any more. */
export function authWithKeys(...more: Key[]): { keys: Key[] } {
  return {
    keys: [
      { name: 'app', key: KEYS.ingest, scopes: ['ingest'] },
      { name: 'grafana', key: KEYS.read, scopes: ['read'] },
      { name: 'oncall', key: KEYS.admin, scopes: ['admin'] },
      ...more,
    ],
  }
}
