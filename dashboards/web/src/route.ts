/**
 * A view's whole state lives in the URL's hash (`#/activities?source=user`),
 * so a view can be shared, bookmarked and reloaded. The hash, not the path:
 * the collector serves one page at `/` and every other path is the API's.
 */
import { useEffect, useState } from 'react'

export const VIEWS = ['activities', 'live', 'trends', 'health', 'audit'] as const
export type View = (typeof VIEWS)[number]

export interface Route {
  view: View
  params: URLSearchParams
}

export function parseHash(hash: string): Route {
  const [path = '', query = ''] = hash.replace(/^#\/?/, '').split('?', 2)
  const view = (VIEWS as readonly string[]).includes(path) ? (path as View) : 'activities'
  return { view, params: new URLSearchParams(query) }
}

export function hrefFor(view: View, params: Record<string, string | undefined> | URLSearchParams = {}): string {
  const q = params instanceof URLSearchParams ? new URLSearchParams(params) : new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => !!e[1]))
  const s = q.toString()
  return `#/${view}${s ? `?${s}` : ''}`
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash))
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash))
    addEventListener('hashchange', on)
    return () => removeEventListener('hashchange', on)
  }, [])
  return route
}

/** Replace some parameters of the current view (empty ones removed), without a history entry per keystroke. */
export function setParams(update: Record<string, string | undefined>, push = false): void {
  const { view, params } = parseHash(location.hash)
  for (const [k, v] of Object.entries(update)) {
    if (v === undefined || v === '') params.delete(k)
    else params.set(k, v)
  }
  const next = hrefFor(view, params)
  if (push) location.hash = next
  else history.replaceState(null, '', next)
  dispatchEvent(new HashChangeEvent('hashchange'))
}
