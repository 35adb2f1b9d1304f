/**
 * The list: newest first over the keyset cursor, a page fetched as the
 * scroll nears the end of what is loaded, only the visible rows in the DOM
 * (@tanstack/react-virtual), so 100,000 rows scroll like 100.
 */
import { useVirtualizer } from '@tanstack/react-virtual'
import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { apiKey, apiPath, getJson, headers, type Activity, type Page } from '../api.ts'
import { Empty, ErrorBox, FilterBar, filtersOf, Loading } from '../components.tsx'
import { clockTime, localTime, num, utcTitle } from '../format.ts'
import { setParams } from '../route.ts'
import { Drawer } from './Drawer.tsx'

const PAGE = 200

export interface Paged {
  rows: Activity[]
  done: boolean
  loading: boolean
  error: unknown
  loadMore(): void
}

/**
 * The rows of a filter, page by page. One request at a time (a ref, not
 * state, guards it: a render may ask twice before the state says loading);
 * a new filter abandons the old one's request and starts over.
 */
export function usePaged(route: string, filters: Record<string, string>): Paged {
  const key = JSON.stringify(filters)
  const [state, setState] = useState<{ rows: Activity[]; done: boolean; loading: boolean; error: unknown }>({ rows: [], done: false, loading: false, error: null })
  const run = useRef<{ key: string; cursor: string | null; busy: boolean; done: boolean; ctl: AbortController | null }>({ key, cursor: null, busy: false, done: false, ctl: null })
  useEffect(() => {
    run.current.ctl?.abort()
    run.current = { key, cursor: null, busy: false, done: false, ctl: null }
    setState({ rows: [], done: false, loading: false, error: null })
  }, [key])
  const loadMore = useCallback(() => {
    const r = run.current
    if (r.busy || r.done || r.key !== key) return
    r.busy = true
    r.ctl = new AbortController()
    setState((s) => ({ ...s, loading: true }))
    getJson<Page<Activity>>(apiPath(route, { ...filters, limit: PAGE, cursor: r.cursor }), r.ctl.signal).then(
      (page) => {
        if (run.current !== r) return
        r.busy = false
        r.cursor = page.next_cursor
        r.done = page.next_cursor === null
        setState((s) => ({ rows: s.rows.concat(page.data), done: r.done, loading: false, error: null }))
      },
      (error) => {
        if (run.current !== r || (error as Error).name === 'AbortError') return
        r.busy = false
        r.done = true
        setState((s) => ({ ...s, loading: false, error }))
      },
    )
    // `key` is the filters' content: a new object with the same filters is the same list.
  }, [key, route])
  return { ...state, loadMore }
}

function useCount(filters: Record<string, string>): number | null {
  const [count, setCount] = useState<number | null>(null)
  const key = JSON.stringify(filters)
  useEffect(() => {
    const ctl = new AbortController()
    setCount(null)
    getJson<{ count: number }>(apiPath('activities/count', filters), ctl.signal).then((r) => setCount(r.count), () => {})
    return () => ctl.abort()
    // `key` is the filters' content, as in usePaged.
  }, [key])
  return count
}

/**
 * The current filter to a file, through the streaming /export. Without a
 * key a plain link: the browser streams it to disk. With one, the key must
 * go in a header, which a link cannot send: the response is streamed to a
 * file the user picks (File System Access), or, where that is missing,
 * collected into a Blob.
 */
async function exportWithKey(url: string, name: string): Promise<void> {
  const res = await fetch(url, { headers: headers() })
  if (!res.ok || !res.body) throw new Error(`export failed: ${res.status}`)
  const picker = (window as unknown as { showSaveFilePicker?: (o: { suggestedName: string }) => Promise<{ createWritable(): Promise<WritableStream> }> }).showSaveFilePicker
  if (picker) {
    const file = await picker({ suggestedName: name })
    await res.body.pipeTo(await file.createWritable())
    return
  }
  const a = document.createElement('a')
  a.href = URL.createObjectURL(await res.blob())
  a.download = name
  a.click()
  URL.revokeObjectURL(a.href)
}

function ExportLinks({ filters }: { filters: Record<string, string> }) {
  return (
    <span className="exports">
      Export:
      {(['csv', 'ndjson'] as const).map((format) => {
        const url = apiPath('export', { ...filters, format })
        const name = `activities.${format}`
        return apiKey() ? (
          <button key={format} type="button" className="link" onClick={() => void exportWithKey(url, name)}>
            {format.toUpperCase()}
          </button>
        ) : (
          <a key={format} href={url} download={name} data-testid={`export-${format}`}>
            {format.toUpperCase()}
          </a>
        )
      })}
    </span>
  )
}

export function Activities({ params }: { params: URLSearchParams }) {
  const filters = useMemo(() => ({ from: 'now-24h', ...filtersOf(params) }), [params])
  const compact = params.get('compact') === '1'
  const paged = usePaged('activities', filters)
  const count = useCount(filters)
  const [selected, setSelected] = useState(-1)
  const [open, setOpen] = useState<Activity | null>(null)
  const scroller = useRef<HTMLDivElement>(null)
  const rowHeight = compact ? 28 : 46
  const virtual = useVirtualizer({ count: paged.rows.length + (paged.done ? 0 : 1), getScrollElement: () => scroller.current, estimateSize: () => rowHeight, overscan: 8 })
  useEffect(() => virtual.measure(), [rowHeight, virtual])
  const items = virtual.getVirtualItems()
  const last = items.at(-1)?.index ?? -1
  useEffect(() => {
    if (last >= paged.rows.length - 1 && !paged.done && !paged.loading && !paged.error) paged.loadMore()
  }, [last, paged])
  useEffect(() => setSelected(-1), [JSON.stringify(filters)])

  const onKey = (e: React.KeyboardEvent) => {
    const move = (to: number) => {
      e.preventDefault()
      const i = Math.max(0, Math.min(paged.rows.length - 1, to))
      setSelected(i)
      virtual.scrollToIndex(i, { align: 'auto' })
    }
    if (e.key === 'ArrowDown' || e.key === 'j') move(selected + 1)
    else if (e.key === 'ArrowUp' || e.key === 'k') move(selected - 1)
    else if (e.key === 'PageDown') move(selected + Math.floor((scroller.current?.clientHeight ?? 400) / rowHeight))
    else if (e.key === 'PageUp') move(selected - Math.floor((scroller.current?.clientHeight ?? 400) / rowHeight))
    else if (e.key === 'Home') move(0)
    else if (e.key === 'End') move(paged.rows.length - 1)
    else if (e.key === 'Enter' && paged.rows[selected]) setOpen(paged.rows[selected]!)
  }

  return (
    <section className="view activities">
      <FilterBar params={params} />
      <div className="toolbar">
        <span className="count" data-testid="match-count">
          {count === null ? 'counting…' : `${num(count)} ${count === 1 ? 'activity matches' : 'activities match'}`}
          {paged.rows.length > 0 && <span className="muted"> · {num(paged.rows.length)} loaded</span>}
        </span>
        <label className="toggle">
          <input type="checkbox" checked={compact} onChange={(e) => setParams({ compact: e.target.checked ? '1' : undefined })} /> Compact
        </label>
        <ExportLinks filters={filters} />
      </div>
      {paged.error ? <ErrorBox error={paged.error} /> : null}
      {!paged.error && paged.done && paged.rows.length === 0 ? <Empty>No activity matches these filters in this time range.</Empty> : null}
      <div className={`list-head${compact ? ' compact' : ''}`} aria-hidden="true">
        <span>time</span>
        <span>status</span>
        <span>action</span>
        <span className="source">source</span>
        <span className="actor">actor</span>
        {!compact && <span className="entity">entity</span>}
        <span className="service">service</span>
        {!compact && <span className="tenant">tenant</span>}
        <span className="duration">duration</span>
      </div>
      <div className={`list${compact ? ' compact' : ''}`} ref={scroller} tabIndex={0} role="grid" aria-label="Activities" aria-rowcount={count ?? -1} onKeyDown={onKey} data-testid="list">
        <div style={{ height: virtual.getTotalSize(), position: 'relative' }}>
          {items.map((item) => {
            const a = paged.rows[item.index]
            if (!a) {
              return (
                <div key="loader" className="row loader" style={{ transform: `translateY(${item.start}px)`, height: rowHeight }}>
                  {paged.loading || !paged.error ? <Loading what="Loading more" /> : null}
                </div>
              )
            }
            return (
              <div
                key={a.id}
                role="row"
                aria-selected={item.index === selected}
                data-id={a.id}
                className={`row ${a.status}${item.index === selected ? ' selected' : ''}`}
                style={{ transform: `translateY(${item.start}px)`, height: rowHeight }}
                onClick={() => {
                  setSelected(item.index)
                  setOpen(a)
                }}
              >
                <span className="time" title={utcTitle(a.timestamp)}>
                  {compact ? clockTime(a.timestamp) : localTime(a.timestamp)}
                </span>
                <span className={`badge ${a.status}`}>{a.status}</span>
                <span className="action">{a.action}</span>
                <span className="source">{a.source}</span>
                <span className="actor">{a.actor_id ?? ''}</span>
                {!compact && (
                  <span className="entity">
                    {a.entity_type ?? ''}
                    {a.entity_id ? ` ${a.entity_id}` : ''}
                  </span>
                )}
                <span className="service">{a.service ?? ''}</span>
                {!compact && <span className="tenant">{a.tenant_id ?? ''}</span>}
                <span className="duration">{a.duration_ms === null ? '' : `${num(a.duration_ms, a.duration_ms < 10 ? 1 : 0)} ms`}</span>
              </div>
            )
          })}
        </div>
      </div>
      {open && <Drawer activity={open} onClose={() => setOpen(null)} />}
    </section>
  )
}
