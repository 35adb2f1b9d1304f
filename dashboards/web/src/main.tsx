/** The actline monitor: one page, five views, all state in the URL, all data from /api/v1. */
import { StrictMode, useEffect, useRef, useState } from 'react'
import { createRoot } from 'react-dom/client'
import { onAuthError, setApiKey, apiKey } from './api.ts'
import { KeyPrompt } from './components.tsx'
import { hrefFor, useRoute, VIEWS, type View } from './route.ts'
import { Activities } from './views/Activities.tsx'
import { Audit } from './views/Audit.tsx'
import { Health } from './views/Health.tsx'
import { LiveTail } from './views/LiveTail.tsx'
import { Trends } from './views/Trends.tsx'
import './styles.css'

const TITLES: Record<View, string> = { activities: 'Activities', live: 'Live tail', trends: 'Trends', health: 'Breakdown & health', audit: 'Audit trail' }

function App() {
  const route = useRoute()
  const [askKey, setAskKey] = useState<string | null>(null)
  // A new key remounts the view, which loads again with it.
  const [keyVersion, setKeyVersion] = useState(0)
  const refused = useRef(false)
  useEffect(
    () =>
      onAuthError((e) => {
        // Several requests fail at once with the same key: the first one forgets it, all say why.
        if (e.status === 401 && apiKey() !== null) {
          refused.current = true
          setApiKey(null)
        }
        setAskKey(e.status === 403 ? `${e.message}. Use a key with the read scope.` : refused.current ? `That key was refused: ${e.message}.` : 'This collector has API keys configured: enter one to read its activities.')
      }),
    [],
  )
  useEffect(() => {
    document.title = `${TITLES[route.view]} · actline`
  }, [route.view])
  const props = { params: route.params }
  return (
    <>
      <header className="top">
        <a className="brand" href="#/activities">
          <img src="/favicon.svg" alt="" width={20} height={20} /> actline
        </a>
        <nav aria-label="Views">
          {VIEWS.map((v) => (
            <a key={v} href={hrefFor(v, carry(route.params))} aria-current={route.view === v ? 'page' : undefined}>
              {TITLES[v]}
            </a>
          ))}
        </nav>
        {apiKey() && (
          <button
            type="button"
            className="link"
            onClick={() => {
              setApiKey(null)
              location.reload()
            }}
          >
            Forget key
          </button>
        )}
      </header>
      <main key={keyVersion}>
        {route.view === 'activities' && <Activities {...props} />}
        {route.view === 'live' && <LiveTail {...props} />}
        {route.view === 'trends' && <Trends {...props} />}
        {route.view === 'health' && <Health {...props} />}
        {route.view === 'audit' && <Audit {...props} />}
      </main>
      {askKey && (
        <KeyPrompt
          reason={askKey}
          onDone={() => {
            setAskKey(null)
            setKeyVersion((v) => v + 1)
          }}
        />
      )}
    </>
  )
}

/** The filters every view understands travel with a change of view. */
function carry(params: URLSearchParams): URLSearchParams {
  const out = new URLSearchParams()
  for (const k of ['from', 'to', 'source', 'action', 'category', 'severity', 'status', 'service', 'tenant']) {
    const v = params.get(k)
    if (v) out.set(k, v)
  }
  return out
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
