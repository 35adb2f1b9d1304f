/** One activity, every stored field, with links to its neighbours: the same actor, entity and trace. */
import { useEffect } from 'react'
import type { Activity } from '../api.ts'
import { localTime, utcTitle } from '../format.ts'
import { hrefFor } from '../route.ts'

const FIELDS: (keyof Activity)[] = [
  'id', 'timestamp', 'received_at', 'source', 'action', 'category', 'severity', 'status', 'entity_type', 'entity_id', 'actor_id',
  'tenant_id', 'service', 'trace_id', 'span_id', 'correlation_id', 'duration_ms', 'ip', 'user_agent',
]

export function Drawer({ activity, onClose }: { activity: Activity; onClose: () => void }) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && onClose()
    addEventListener('keydown', onKey)
    return () => removeEventListener('keydown', onKey)
  }, [onClose])
  const a = activity
  const links = [
    a.actor_id && { label: `Everything ${a.actor_id} did`, href: hrefFor('activities', { actor: a.actor_id, from: 'now-30d' }) },
    a.entity_id && { label: `History of ${a.entity_type ?? 'entity'} ${a.entity_id}`, href: hrefFor('activities', { entity_type: a.entity_type ?? undefined, entity_id: a.entity_id, from: 'now-30d' }) },
    a.trace_id && { label: 'Same trace', href: hrefFor('activities', { trace_id: a.trace_id, from: 'now-30d' }) },
  ].filter((l): l is { label: string; href: string } => !!l)
  return (
    <aside className="drawer" role="dialog" aria-label="Activity detail" data-testid="drawer">
      <header>
        <h2>
          {a.action} <span className={`badge ${a.status}`}>{a.status}</span>
        </h2>
        <button type="button" onClick={onClose} aria-label="Close detail">
          ×
        </button>
      </header>
      <dl className="fields">
        {FIELDS.map((f) => {
          const v = a[f]
          const text = v === null || v === undefined ? '' : String(v)
          const isTime = f === 'timestamp' || f === 'received_at'
          return (
            <div key={f} data-field={f}>
              <dt>{f}</dt>
              <dd title={isTime && text ? utcTitle(text) : undefined}>{text === '' ? <span className="muted">–</span> : isTime ? `${localTime(text)} (${text})` : text}</dd>
            </div>
          )
        })}
      </dl>
      {links.length > 0 && (
        <nav className="links" aria-label="Related activities">
          {links.map((l) => (
            <a key={l.href} href={l.href} onClick={onClose}>
              {l.label}
            </a>
          ))}
        </nav>
      )}
      <h3>attributes</h3>
      {Object.keys(a.attributes ?? {}).length === 0 ? (
        <p className="muted">none</p>
      ) : (
        <table className="attributes">
          <tbody>
            {Object.entries(a.attributes).map(([k, v]) => (
              <tr key={k}>
                <th>{k}</th>
                <td>{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>details</h3>
      <pre className="json" data-testid="details">{a.details === null ? 'null' : JSON.stringify(a.details, null, 2)}</pre>
    </aside>
  )
}
