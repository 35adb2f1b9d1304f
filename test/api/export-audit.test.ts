/**
 * /export in its three formats, the audit activity every export leaves, and
 * /audit's cursor walk over the PostgreSQL trail: on embedded PGlite always,
 * and on the real server when PG_URL is set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PG_URL, createScratchDatabase, eventually, post, startCollector, storesOf, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

const modes = PG_URL ? (['embedded', 'server'] as const) : (['embedded'] as const)

describe.each(modes)('export and audit trail (%s PostgreSQL)', (mode) => {
  const dir = tempDir()
  let c: RunningCollector
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined
  const N = 1234
  const base = Date.parse('2026-03-01T00:00:00Z')

  beforeAll(async () => {
    scratch = mode === 'server' ? await createScratchDatabase() : undefined
    c = await startCollector(testConfig(dir.path, scratch ? { exporters: { postgres: { url: scratch.url } } } : {}))
    const rows = Array.from({ length: N }, (_, i) => ({
      source: i % 3 === 0 ? 'database' : 'user',
      action: i % 2 ? 'order.update' : 'order.create',
      actor_id: `u${i % 10}`,
      timestamp: new Date(base + i * 60_000).toISOString(),
      // Text that needs quoting in CSV, and a leading '=' a spreadsheet would run.
      details: i === 7 ? '=HYPERLINK("http://x")' : { note: `line one\nline "two", three`, i },
    }))
    for (let i = 0; i < N; i += 400) expect((await post(c.url, JSON.stringify(rows.slice(i, i + 400)))).status).toBe(200)
    const { clickhouse, postgres } = storesOf(c.collector)
    await eventually('rows in both stores', async () => {
      const [r] = await (await clickhouse.query({ query: 'SELECT count() AS n FROM actline.activities', format: 'JSONEachRow' })).json<{ n: string }>()
      const { rows: [p] } = await postgres.query('SELECT count(*)::int AS n FROM audit_log')
      return Number(r!.n) === N && p.n === N
    })
  }, 180_000)

  afterAll(async () => {
    await c?.collector.shutdown()
    await scratch?.drop()
    dir.remove()
  })

  const fetchText = async (path: string) => {
    const res = await fetch(`${c.url}/api/v1${path}`)
    return { status: res.status, type: res.headers.get('content-type'), disposition: res.headers.get('content-disposition'), text: await res.text() }
  }

  it('exports NDJSON, JSON and CSV with every matching row, newest first', async () => {
    const nd = await fetchText('/export?format=ndjson&action=order.create')
    expect(nd.type).toMatch(/application\/x-ndjson/)
    expect(nd.disposition).toMatch(/attachment; filename="activities-.*\.ndjson"/)
    const lines = nd.text.trim().split('\n').map((l) => JSON.parse(l))
    expect(lines).toHaveLength(Math.ceil(N / 2))
    expect(lines[0].timestamp > lines.at(-1).timestamp).toBe(true)

    const json = await fetchText('/export?format=json&source=database')
    const array = JSON.parse(json.text)
    expect(array).toHaveLength(Math.ceil(N / 3))
    expect(array.every((r: any) => r.source === 'database')).toBe(true)

    const csv = await fetchText('/export?format=csv')
    expect(csv.type).toMatch(/text\/csv/)
    const records = parseCsv(csv.text)
    expect(records[0]!.slice(0, 3)).toEqual(['id', 'timestamp', 'received_at'])
    expect(records.slice(1).filter((r) => r[4] === 'order.update' || r[4] === 'order.create')).toHaveLength(N)
    const details = records[0]!.indexOf('details')
    const withNewline = records.find((r) => r[details]?.includes('line one'))!
    expect(JSON.parse(withNewline[details]!)).toMatchObject({ note: 'line one\nline "two", three' })
    expect(records.some((r) => r[details] === `'=HYPERLINK("http://x")`)).toBe(true)
  })

  it('records every export as an audit activity: who, which filter, how many rows', async () => {
    await fetchText('/export?format=ndjson&action=order.update&actor=u3')
    const expected = Array.from({ length: N }, (_, i) => i).filter((i) => i % 2 === 1 && i % 10 === 3).length
    const { postgres } = storesOf(c.collector)
    let audit: any
    await eventually('the export audit activity in PostgreSQL', async () => {
      const { rows } = await postgres.query(`SELECT * FROM audit_log WHERE action = 'activities.export' AND details->'filter'->>'actor' = 'u3'`)
      audit = rows[0]
      return rows.length === 1
    })
    expect(audit).toMatchObject({ source: 'user', category: 'data_export', status: 'success', actor_id: 'loopback' })
    expect(audit.details).toEqual({ format: 'ndjson', filter: { action: ['order.update'], actor: 'u3' }, rows: expected, complete: true })
  })

  it('walks the PostgreSQL audit trail by cursor, each row once, with filters', async () => {
    const seen = new Set<string>()
    let cursor: string | null = null
    let pages = 0
    do {
      const res = await fetch(`${c.url}/api/v1/audit?limit=100&action=order.create,order.update${cursor ? `&cursor=${cursor}` : ''}`)
      expect(res.status).toBe(200)
      const body = (await res.json()) as any
      for (const r of body.data) {
        expect(seen.has(r.id)).toBe(false)
        seen.add(r.id)
      }
      cursor = body.next_cursor
      pages++
    } while (cursor)
    expect(seen.size).toBe(N)
    expect(pages).toBe(Math.ceil(N / 100))
    const filtered = (await (await fetch(`${c.url}/api/v1/audit?actor=u4&source=database&from=2026-03-01T00:00:00Z&to=2026-03-01T10:00:00Z`)).json()) as any
    const expected = Array.from({ length: 600 }, (_, i) => i).filter((i) => i % 10 === 4 && i % 3 === 0)
    expect(filtered.data.map((r: any) => r.occurred_at)).toEqual(expected.reverse().map((i) => new Date(base + i * 60_000).toISOString()))
  })
})

/** RFC 4180, enough for the test: quoted fields with "" escapes and embedded newlines. */
function parseCsv(text: string): string[][] {
  const records: string[][] = []
  let field = ''
  let record: string[] = []
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++
      else if (ch === '"') quoted = false
      else field += ch
    } else if (ch === '"') quoted = true
    else if (ch === ',') record.push(field), (field = '')
    else if (ch === '\r' && text[i + 1] === '\n') {
      record.push(field)
      records.push(record)
      ;(record = []), (field = ''), i++
    } else field += ch
  }
  return records
}
