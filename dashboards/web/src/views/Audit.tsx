/** The PostgreSQL audit trail (/api/v1/audit), filtered, a page at a time. */
import { useEffect, useMemo, useState } from 'react'
import { apiPath, getJson, type Activity, type Page } from '../api.ts'
import { Empty, ErrorBox, FilterBar, filtersOf, Loading } from '../components.tsx'
import { localTime, utcTitle } from '../format.ts'
import { Drawer } from './Drawer.tsx'

type AuditRow = Activity & { occurred_at: string }

export function Audit({ params }: { params: URLSearchParams }) {
  const filters = useMemo(() => ({ from: 'now-7d', ...filtersOf(params) }), [params])
  const key = JSON.stringify(filters)
  // Cursors of the pages before this one: back is a pop, forward a push.
  const [cursors, setCursors] = useState<(string | null)[]>([null])
  const [page, setPage] = useState<Page<AuditRow> | null>(null)
  const [error, setError] = useState<unknown>(null)
  const [open, setOpen] = useState<Activity | null>(null)
  useEffect(() => setCursors([null]), [key])
  const cursor = cursors.at(-1) ?? null
  useEffect(() => {
    const ctl = new AbortController()
    setPage(null)
    setError(null)
    getJson<Page<AuditRow>>(apiPath('audit', { ...filters, limit: 50, cursor }), ctl.signal).then(setPage, (e) => (e as Error).name !== 'AbortError' && setError(e))
    return () => ctl.abort()
    // `key` is the filters' content: a new object with the same filters is the same page.
  }, [key, cursor])
  return (
    <section className="view audit">
      <FilterBar params={params} defaultPreset="7d" />
      <div className="toolbar">
        <button type="button" disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>
          ← Newer
        </button>
        <span className="muted">page {cursors.length}</span>
        <button type="button" disabled={!page?.next_cursor} onClick={() => page?.next_cursor && setCursors((c) => [...c, page.next_cursor])}>
          Older →
        </button>
      </div>
      {error ? <ErrorBox error={error} /> : null}
      {!page && !error ? <Loading /> : null}
      {page && page.data.length === 0 ? <Empty>The audit trail has no row for these filters in this time range.</Empty> : null}
      {page && page.data.length > 0 && (
        <table className="audit-table" data-testid="audit-table">
          <thead>
            <tr>
              <th>time</th>
              <th>actor</th>
              <th>action</th>
              <th>entity</th>
              <th>status</th>
              <th>tenant</th>
              <th>service</th>
            </tr>
          </thead>
          <tbody>
            {page.data.map((r) => (
              <tr key={r.id} data-id={r.id} onClick={() => setOpen(r)} tabIndex={0} onKeyDown={(e) => e.key === 'Enter' && setOpen(r)}>
                <td title={utcTitle(r.occurred_at)}>{localTime(r.occurred_at)}</td>
                <td>{r.actor_id ?? ''}</td>
                <td>{r.action}</td>
                <td>
                  {r.entity_type ?? ''} {r.entity_id ?? ''}
                </td>
                <td>
                  <span className={`badge ${r.status}`}>{r.status}</span>
                </td>
                <td>{r.tenant_id ?? ''}</td>
                <td>{r.service ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {open && <Drawer activity={{ ...open, timestamp: (open as AuditRow).occurred_at ?? open.timestamp }} onClose={() => setOpen(null)} />}
    </section>
  )
}
