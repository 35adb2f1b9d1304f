/**
 * Browsers may not drive a listener from another site. A page anywhere can
 * make the visitor's browser send requests to 127.0.0.1 (a form, a
 * `no-cors` fetch), or rename itself to it through DNS (rebinding) and then
 * read the answers; a loopback listener without keys is open to both. So,
 * before anything else runs, each listener refuses:
 *
 * - a `Host` that is a name it was not told it serves (IP literals and
 *   `localhost` are always fine: rebinding needs a name the attacker's DNS
 *   answers for, and the browser resolves those two itself);
 * - an `Origin` other than its own (`http://<Host>`) or one configured;
 * - with no `Origin` (a GET), a request the browser marks as coming from
 *   another site (`Sec-Fetch-Site`), unless it is a navigation a person
 *   made by following a link.
 *
 * Clients that are not browsers send no `Origin` and no `Sec-Fetch-*`, and
 * pass. Followed: Jupyter's and Vite's host checks (both refuse names not
 * listed, accept IP literals and localhost) and the Fetch metadata
 * resource-isolation policy (web.dev/articles/fetch-metadata).
 */
import { isIP } from 'node:net'
import type { FastifyRequest } from 'fastify'

export interface BrowserPolicy {
  /** Origins (`https://grafana.example.com`) whose pages may call the listener; `*` any. */
  allowed_origins: readonly string[]
  /** Host names, besides IP literals and localhost, clients may reach the listener by; `*` any. */
  allowed_hosts: readonly string[]
}

/** A request header's value; the first, where a client sent it twice. */
export function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/** The host name of a Host header (`[::1]:8123` -> `::1`). */
function hostName(host: string): string {
  const bracket = /^\[([^\]]+)\](:\d+)?$/.exec(host)
  if (bracket) return bracket[1]!
  return host.replace(/:\d+$/, '')
}

/** Why a request is refused, or undefined when it may go on. */
export function browserRefusal(request: FastifyRequest, policy: BrowserPolicy): string | undefined {
  const host = header(request, 'host')
  if (host !== undefined) {
    const name = hostName(host.toLowerCase())
    const known = isIP(name) !== 0 || name === 'localhost' || policy.allowed_hosts.includes('*') || policy.allowed_hosts.some((h) => h.toLowerCase() === name)
    if (!known) return `Host '${host}' is not a name this listener serves (a DNS rebinding attempt looks like this); add it to server.allowed_hosts if clients really use it`
  }
  const origin = header(request, 'origin')
  const allowed = (o: string) => policy.allowed_origins.includes('*') || policy.allowed_origins.includes(o)
  if (origin !== undefined) {
    if (host !== undefined && [`http://${host}`, `https://${host}`].includes(origin.toLowerCase())) return undefined
    if (allowed(origin)) return undefined
    return `requests from pages at ${origin} are refused; add the origin to server.allowed_origins to let its pages call this listener`
  }
  const site = header(request, 'sec-fetch-site')
  if ((site === 'cross-site' || site === 'same-site') && header(request, 'sec-fetch-mode') !== 'navigate') {
    return `requests a browser sends for a page of another site are refused; add its origin to server.allowed_origins to let it call this listener`
  }
  return undefined
}
