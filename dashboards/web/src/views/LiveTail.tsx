/**
 * New activities as they are stored, by polling the newest page every
 * second rather than Server-Sent Events: an EventSource cannot send the
 * Authorization header, so SSE would put the API key in the URL (or need a
 * cookie the API does not have); polling reuses /activities with the same
 * filters and key, costs one key-ordered top-N read a second, and shows what
 * the store holds, not what is still in the log. It keeps at most MAX rows.
 */
import { useEffect, useMemo, useRef, useState } from 'react'
import { apiPath, getJson, type Activity, type Page } from '../api.ts'
import { ErrorBox, FilterBar, filtersOf } from '../components.tsx'
import { clockTime, num, utcTitle } from '../format.ts'
import { Drawer } from './Drawer.tsx'

export const MAX_ROWS = 500
const POLL_MS = 1000

/**
 * A poll's rows put before what is shown, newest first, bounded. A poll
 * starts at the newest row shown, inclusive (more may share its
 * millisecond), so the rows it returns again are dropped by id.
 */
export function merge(shown: Activity[], page: Activity[], max = MAX_ROWS): { rows: Activity[]; fresh: number } {
  const seen = new Set(shown.slice(0, 200).map((a) => a.id))
  const fresh = page.filter((a) => !seen.has(a.id))
  return { rows: fresh.length ? fresh.concat(shown).slice(0, max) : shown, fresh: fresh.length }
}

export function LiveTail({ params }: { params: URLSearchParams }) {
  const filters = useMemo(() => {
    const { from: _f, to: _t, ...rest } = filtersOf(params)
    return rest
  }, [params])
  const [rows, setRows] = useState<Activity[]>([])
  const [paused, setPaused] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const [open, setOpen] = useState<Activity | null>(null)
  const arrivals = useRef<{ t: number; n: number }[]>([])
  const [rate, setRate] = useState(0)
  const newest = useRef<string | null>(null)
  const shown = useRef<Activity[]>([])
  const key = JSON.stringify(filters)

  useEffect(() => {
    setRows([])
    shown.current = []
    newest.current = null
    arrivals.current = []
  }, [key])

  useEffect(() => {
    if (paused) return
    let stopped = false
    const ctl = new AbortController()
    const tick = async () => {
      try {
        // First the newest rows, as tail -f starts; then from the newest shown
        // (inclusive: rows of the same millisecond may still arrive).
        const page = await getJson<Page<Activity>>(apiPath('activities', newest.current ? { ...filters, from: newest.current, limit: 200 } : { ...filters, limit: 50 }), ctl.signal)
        if (stopped) return
        setError(null)
        const { rows: next, fresh } = merge(shown.current, page.data)
        // The first poll's rows were already there: they are not arrivals.
        if (newest.current !== null && fresh > 0) arrivals.current.push({ t: Date.now(), n: fresh })
        if (next[0]) newest.current = next[0].timestamp
        shown.current = next
        setRows(next)
      } catch (err) {
        if (!stopped && (err as Error).name !== 'AbortError') setError(err)
      }
      const cutoff = Date.now() - 10_000
      arrivals.current = arrivals.current.filter((a) => a.t >= cutoff)
      setRate(arrivals.current.reduce((s, a) => s + a.n, 0) / 10)
      if (!stopped) timer = window.setTimeout(tick, POLL_MS)
    }
    let timer = window.setTimeout(tick, 0)
    return () => {
      stopped = true
      ctl.abort()
      clearTimeout(timer)
    }
  }, [paused, key])

  return (
    <section className="view live">
      <FilterBar params={params} search />
      <div className="toolbar">
        <button type="button" onClick={() => setPaused((p) => !p)} aria-pressed={paused}>
          {paused ? '▶ Resume' : '❚❚ Pause'}
        </button>
        <span className="rate" data-testid="tail-rate">
          {paused ? 'paused' : `${num(rate, 1)} activities/s`}
        </span>
        <span className="muted">
          the newest {MAX_ROWS} are kept · {num(rows.length)} shown
        </span>
      </div>
      {error ? <ErrorBox error={error} /> : null}
      <div className="list tail" data-testid="tail">
        {rows.length === 0 && !error ? <div className="state">Waiting for activities…</div> : null}
        {rows.map((a) => (
          <div key={a.id} className={`row ${a.status}`} data-id={a.id} onClick={() => setOpen(a)}>
            <span className="time" title={utcTitle(a.timestamp)}>
              {clockTime(a.timestamp)}
            </span>
            <span className={`badge ${a.status}`}>{a.status}</span>
            <span className="action">{a.action}</span>
            <span className="source">{a.source}</span>
            <span className="actor">{a.actor_id ?? ''}</span>
            <span className="service">{a.service ?? ''}</span>
          </div>
        ))}
      </div>
      {open && <Drawer activity={open} onClose={() => setOpen(null)} />}
    </section>
  )
}
