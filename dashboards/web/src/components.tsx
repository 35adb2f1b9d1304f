/** Pieces every view shares: the filter bar, states (loading, empty, error), the key prompt. */
import { useEffect, useRef, useState, type ReactNode } from 'react'
import { setApiKey, type ApiError } from './api.ts'
import { setParams } from './route.ts'
import { CATEGORIES, SEVERITIES, SOURCES, STATUSES } from '../../../schemas/vocabulary.ts'

export { CATEGORIES, SEVERITIES, SOURCES, STATUSES }

export const PRESETS = [
  ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['90d', 'Last 90 days'],
] as const

/** The filters the API takes for a listing, under the API's own names. */
export const FILTER_KEYS = ['from', 'to', 'source', 'action', 'category', 'severity', 'status', 'actor', 'entity_type', 'entity_id', 'tenant', 'service', 'trace_id', 'q'] as const
export type FilterKey = (typeof FILTER_KEYS)[number]

export function filtersOf(params: URLSearchParams, keys: readonly string[] = FILTER_KEYS): Record<string, string> {
  const out: Record<string, string> = {}
  for (const k of keys) {
    const v = params.get(k)
    if (v) out[k] = v
  }
  return out
}

/** A text box that writes to the URL once typing pauses, and follows the URL when it changes elsewhere. */
function TextFilter({ name, label, value, placeholder, wide }: { name: string; label: string; value: string; placeholder?: string; wide?: boolean }) {
  const [text, setText] = useState(value)
  const timer = useRef<number | undefined>(undefined)
  useEffect(() => setText(value), [value])
  return (
    <label className={wide ? 'field wide' : 'field'}>
      <span>{label}</span>
      <input
        type={name === 'q' ? 'search' : 'text'}
        name={name}
        value={text}
        placeholder={placeholder}
        spellCheck={false}
        onChange={(e) => {
          const v = e.target.value
          setText(v)
          clearTimeout(timer.current)
          timer.current = window.setTimeout(() => setParams({ [name]: v.trim() || undefined }), 300)
        }}
      />
    </label>
  )
}

function SelectFilter({ name, label, value, options }: { name: string; label: string; value: string; options: readonly string[] }) {
  return (
    <label className="field">
      <span>{label}</span>
      <select name={name} value={value} onChange={(e) => setParams({ [name]: e.target.value || undefined })}>
        <option value="">any</option>
        {options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  )
}

/** `from` as the API takes it: a preset (now-24h) or an instant; the inputs show local time. */
function TimeRange({ params, defaultPreset }: { params: URLSearchParams; defaultPreset: string }) {
  const from = params.get('from') ?? `now-${defaultPreset}`
  const preset = /^now-(\w+)$/.exec(from)?.[1]
  const toLocalInput = (iso: string | null) => {
    if (!iso || iso.startsWith('now')) return ''
    const d = new Date(iso)
    return Number.isNaN(d.getTime()) ? '' : new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16)
  }
  const fromInput = (v: string) => (v ? new Date(v).toISOString() : undefined)
  return (
    <>
      <label className="field">
        <span>Time</span>
        <select name="range" value={preset ?? 'custom'} onChange={(e) => setParams(e.target.value === 'custom' ? { from: new Date(Date.now() - 86_400_000).toISOString() } : { from: `now-${e.target.value}`, to: undefined })}>
          {PRESETS.map(([v, label]) => (
            <option key={v} value={v}>
              {label}
            </option>
          ))}
          <option value="custom">Custom…</option>
        </select>
      </label>
      {!preset && (
        <>
          <label className="field">
            <span>From</span>
            <input type="datetime-local" name="from" value={toLocalInput(from)} onChange={(e) => setParams({ from: fromInput(e.target.value) })} />
          </label>
          <label className="field">
            <span>To</span>
            <input type="datetime-local" name="to" value={toLocalInput(params.get('to'))} onChange={(e) => setParams({ to: fromInput(e.target.value) })} />
          </label>
        </>
      )}
    </>
  )
}

export function FilterBar({ params, rowFilters = true, search = true, defaultPreset = '24h' }: { params: URLSearchParams; rowFilters?: boolean; search?: boolean; defaultPreset?: string }) {
  const get = (k: string) => params.get(k) ?? ''
  return (
    <form className="filters" role="search" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
      <TimeRange params={params} defaultPreset={defaultPreset} />
      <SelectFilter name="source" label="Source" value={get('source')} options={SOURCES} />
      <SelectFilter name="status" label="Status" value={get('status')} options={STATUSES} />
      <SelectFilter name="severity" label="Severity" value={get('severity')} options={SEVERITIES} />
      <SelectFilter name="category" label="Category" value={get('category')} options={CATEGORIES} />
      <TextFilter name="action" label="Action" value={get('action')} placeholder="order.create" />
      <TextFilter name="service" label="Service" value={get('service')} />
      <TextFilter name="tenant" label="Tenant" value={get('tenant')} />
      {rowFilters && (
        <>
          <TextFilter name="actor" label="Actor" value={get('actor')} />
          <TextFilter name="entity_type" label="Entity type" value={get('entity_type')} />
          <TextFilter name="entity_id" label="Entity id" value={get('entity_id')} />
          <TextFilter name="trace_id" label="Trace id" value={get('trace_id')} placeholder="32 hex digits" />
        </>
      )}
      {search && <TextFilter name="q" label="Search" value={get('q')} placeholder="action or details contain…" wide />}
    </form>
  )
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <div className="state" role="status" aria-live="polite">
      {what}…
    </div>
  )
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>
}

export function ErrorBox({ error }: { error: unknown }) {
  const e = error as Partial<ApiError> & Error
  return (
    <div className="state error" role="alert">
      <strong>{e.code && e.code !== 'NETWORK' ? `${e.code}: ` : ''}</strong>
      {e.message}
    </div>
  )
}

/** Asked when the collector answers 401/403: the key is kept for this tab only. */
export function KeyPrompt({ reason, onDone }: { reason: string; onDone: () => void }) {
  const [key, setKey] = useState('')
  return (
    <div className="overlay" role="dialog" aria-modal="true" aria-labelledby="key-title">
      <form
        className="key-prompt"
        onSubmit={(e) => {
          e.preventDefault()
          setApiKey(key.trim())
          onDone()
        }}
      >
        <h2 id="key-title">API key needed</h2>
        <p>{reason}</p>
        <p className="hint">The key stays in this tab (sessionStorage) and is sent in the Authorization header; it needs the read scope.</p>
        <input type="password" name="api-key" autoComplete="off" autoFocus value={key} onChange={(e) => setKey(e.target.value)} aria-label="API key" />
        <button type="submit" disabled={key.trim().length === 0}>
          Use this key
        </button>
      </form>
    </div>
  )
}
