/**
 * The monitor's only way to the collector: the public query API (/api/v1),
 * plus /readyz and /metrics for its own state. The API key, when the
 * collector asks for one, lives in this tab's sessionStorage and travels in
 * a header, never in a URL.
 */
const KEY = 'actline.apiKey'

export function apiKey(): string | null {
  return sessionStorage.getItem(KEY)
}

export function setApiKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY, key)
  else sessionStorage.removeItem(KEY)
}

/** An error the API answered: its code and its own words. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
  get needsKey(): boolean {
    return this.status === 401 || this.status === 403
  }
}

const listeners = new Set<(e: ApiError) => void>()
/** Told of every 401/403, so the app can ask for a key wherever it happened. */
export function onAuthError(f: (e: ApiError) => void): () => void {
  listeners.add(f)
  return () => listeners.delete(f)
}

export function headers(): Record<string, string> {
  const key = apiKey()
  return key ? { authorization: `Bearer ${key}` } : {}
}

export async function request(path: string, signal?: AbortSignal): Promise<Response> {
  let res: Response
  try {
    res = await fetch(path, { headers: headers(), ...(signal && { signal }) })
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err
    throw new ApiError(0, 'NETWORK', 'The collector did not answer: is it running?')
  }
  if (!res.ok) {
    let code = `HTTP_${res.status}`
    let message = `${res.status} ${res.statusText}`
    try {
      const body = (await res.json()) as { error?: string; message?: string }
      code = body.error ?? code
      message = body.message ?? message
    } catch {
      // not JSON: keep the status line
    }
    const e = new ApiError(res.status, code, message)
    if (e.needsKey) for (const f of listeners) f(e)
    throw e
  }
  return res
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await request(path, signal)).json() as Promise<T>
}

/** `/api/v1/<route>?<params>`, empty values left out. */
export function apiPath(route: string, params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v))
  const s = q.toString()
  return `/api/v1/${route}${s ? `?${s}` : ''}`
}

export interface Activity {
  id: string
  timestamp: string
  received_at: string
  source: string
  action: string
  category: string
  severity: string
  status: string
  entity_type: string | null
  entity_id: string | null
  actor_id: string | null
  tenant_id: string | null
  service: string | null
  trace_id: string | null
  span_id: string | null
  correlation_id: string | null
  duration_ms: number | null
  details: unknown
  ip: string | null
  user_agent: string | null
  attributes: Record<string, string>
}

export interface Page<T> {
  data: T[]
  next_cursor: string | null
}
