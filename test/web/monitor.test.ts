/**
 * The activity monitor in a real browser (Debian's Chromium through
 * playwright-core) against a real collector holding 100,000 activities
 * posted through its intake. What is checked is what a user would check:
 * the rows are the API's rows, filters narrow to exactly the API's answer,
 * the list stays light while 100,000 match, the tail is live, the chart's
 * numbers are /trends', an export is /export's, a key is asked for and
 * kept out of URLs, and nothing errs or leaves the collector's origin.
 * SCREENSHOTS=1 writes each view to docs/images/.
 */
import { mkdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launch, openPage, type WatchedPage } from '../helpers/browser.ts'
import { caughtUp, eventually, post, startCollector, tempDir, testConfig, type RunningCollector } from '../helpers/stores.ts'

const N = 100_000
const SOURCES = ['user', 'system', 'integration', 'database', 'scheduled'] as const
const CATEGORY = { user: 'authentication', system: 'system', integration: 'integration', database: 'database', scheduled: 'scheduled_job' } as const
const SHOTS = process.env.SCREENSHOTS ? join(import.meta.dirname, '../../docs/images') : join(tmpdir(), 'actline-monitor-shots')
const hex32 = (i: number) => i.toString(16).padStart(32, '0')
mkdirSync(SHOTS, { recursive: true })

function activity(i: number, base: number) {
  const source = SOURCES[i % 5]!
  return {
    timestamp: base - i * 100,
    source,
    action: `act.${i % 20}`,
    category: CATEGORY[source],
    severity: i % 10 === 0 ? 'warning' : 'info',
    status: i % 10 === 0 ? 'failure' : 'success',
    actor_id: `u${i % 300}`,
    tenant_id: `t${i % 4}`,
    service: `svc${i % 3}`,
    entity_type: i % 2 ? 'order' : 'invoice',
    entity_id: String(i % 5000),
    ...(i % 1000 === 0 && { trace_id: hex32(i + 1) }),
    duration_ms: (i % 997) / 3,
    details: { n: i, note: i % 777 === 0 ? 'needle-XYZ' : 'hay' },
    attributes: { 'http.method': i % 2 ? 'GET' : 'POST' },
  }
}

describe('the activity monitor in Chromium', () => {
  const dir = tempDir()
  let c: RunningCollector
  let browser: Browser
  let w: WatchedPage
  let page: Page
  let origin: string
  const base = Date.now() - 60_000

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path, { exporters: { postgres: { enabled: true } }, api: { rate_limit: { enabled: false } } }))
    origin = c.url
    for (let i = 0; i < N; i += 5000) {
      const body = Array.from({ length: 5000 }, (_, k) => JSON.stringify(activity(i + k, base))).join('\n')
      expect((await post(c.url, body, { 'content-type': 'application/x-ndjson' })).status).toBe(200)
    }
    await caughtUp(c.collector, 90_000)
    await eventually('100,000 rows queryable', async () => (await api('/activities/count?from=now-24h')).count === N, 90_000)
    browser = await launch()
    w = await openPage(browser)
    page = w.page
  }, 240_000)

  afterAll(async () => {
    await browser?.close()
    await c?.collector.shutdown()
    dir.remove()
  })

  async function api(path: string) {
    const r = await fetch(`${c.url}/api/v1${path}`)
    expect(r.status, path).toBe(200)
    return (await r.json()) as any
  }

  const count = async () => Number((await page.getByTestId('match-count').innerText()).match(/^([\d,]+) activit/)?.[1]?.replace(/,/g, '') ?? NaN)
  const visibleIds = () => page.locator('[data-testid=list] [role=row]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.id!))
  const domRows = () => page.locator('[data-testid=list] [role=row]').count()

  /** Waits until the count and the first rows are the API's for `query`. */
  async function expectListIs(query: string) {
    const want = await api(`/activities/count?${query}`)
    const first = await api(`/activities?${query}&limit=200`)
    await expect.poll(count, { timeout: 10_000 }).toBe(want.count)
    await expect.poll(async () => (await visibleIds()).slice(0, 5), { timeout: 10_000 }).toEqual(first.data.slice(0, 5).map((r: any) => r.id))
    return { count: want.count as number, first: first.data as any[] }
  }

  /** Scrolls the list to its end, collecting every row id on the way (for results of a few hundred rows). */
  async function scrollAllIds(): Promise<string[]> {
    const ids: string[] = []
    const seen = new Set<string>()
    for (let stalls = 0; stalls < 8; ) {
      const before = seen.size
      for (const id of await visibleIds()) if (!seen.has(id)) (seen.add(id), ids.push(id))
      await page.getByTestId('list').evaluate((el) => (el.scrollTop += el.clientHeight - 50))
      await page.waitForTimeout(60)
      stalls = seen.size === before ? stalls + 1 : 0
    }
    return ids
  }

  async function allApiIds(query: string): Promise<string[]> {
    const ids: string[] = []
    for (let cursor: string | null = ''; cursor !== null; ) {
      const p = await api(`/activities?${query}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`)
      ids.push(...p.data.map((r: any) => r.id))
      cursor = p.next_cursor
    }
    return ids
  }

  it('shows the posted rows, newest first, and holds only the visible ones while 100,000 match', async () => {
    await page.goto(`${origin}/`)
    const { count: n } = await expectListIs('from=now-24h')
    expect(n).toBe(N)
    expect(await domRows()).toBeLessThan(60)
    await page.screenshot({ path: join(SHOTS, 'activities.png') })
  })

  it('narrows to exactly what /api/v1/activities returns, for each filter and the search', async () => {
    const cases: { set: (p: Page) => Promise<void>; query: string; full?: boolean }[] = [
      { set: (p) => p.selectOption('select[name=source]', 'database').then(() => {}), query: 'source=database' },
      { set: (p) => p.selectOption('select[name=status]', 'failure').then(() => {}), query: 'status=failure' },
      { set: (p) => p.selectOption('select[name=severity]', 'warning').then(() => {}), query: 'severity=warning' },
      { set: (p) => p.selectOption('select[name=category]', 'scheduled_job').then(() => {}), query: 'category=scheduled_job' },
      { set: (p) => p.fill('input[name=action]', 'act.7'), query: 'action=act.7' },
      { set: (p) => p.fill('input[name=actor]', 'u17'), query: 'actor=u17', full: true },
      { set: async (p) => (await p.fill('input[name=entity_type]', 'order'), await p.fill('input[name=entity_id]', '43')), query: 'entity_type=order&entity_id=43', full: true },
      { set: (p) => p.fill('input[name=tenant]', 't2'), query: 'tenant=t2' },
      { set: (p) => p.fill('input[name=service]', 'svc1'), query: 'service=svc1' },
      { set: (p) => p.fill('input[name=trace_id]', hex32(3001)), query: `trace_id=${hex32(3001)}`, full: true },
      { set: (p) => p.fill('input[name=q]', 'needle-XYZ'), query: 'q=needle-XYZ', full: true },
      {
        set: async (p) => (await p.selectOption('select[name=source]', 'user'), await p.selectOption('select[name=status]', 'failure'), await p.fill('input[name=tenant]', 't2')),
        query: 'source=user&status=failure&tenant=t2',
      },
    ]
    for (const k of cases) {
      await page.goto(`${origin}/#/activities`)
      await expectListIs('from=now-24h')
      await k.set(page)
      const { count: n } = await expectListIs(`from=now-24h&${k.query}`)
      expect(n, k.query).toBeLessThan(N)
      expect(n, k.query).toBeGreaterThan(0)
      // The URL holds the filter: a reload shows the same rows.
      expect(page.url()).toContain(k.query.split('&')[0]!.replace('=', '='))
      if (k.full) expect(await scrollAllIds(), k.query).toEqual(await allApiIds(`from=now-24h&${k.query}`))
    }
    await page.reload()
    await expectListIs('from=now-24h&source=user&status=failure&tenant=t2')
  }, 120_000)

  it('narrows to an absolute time range set in the browser’s zone', async () => {
    await page.goto(`${origin}/#/activities`)
    await expectListIs('from=now-24h')
    await page.selectOption('select[name=range]', 'custom')
    // Whole minutes inside the posted span (base back to base - 10,000 s), as datetime-local inputs hold them.
    const from = Math.ceil((base - 7_000_000) / 60_000) * 60_000
    const to = from + 30 * 60_000
    const local = (ms: number) => page.evaluate((t) => new Date(t - new Date(t).getTimezoneOffset() * 60_000).toISOString().slice(0, 16), ms)
    await page.fill('input[name=from]', await local(from))
    await page.fill('input[name=to]', await local(to))
    await expect.poll(() => new URL(page.url().replace('#/', '')).searchParams.get('to'), { timeout: 5_000 }).toBe(new Date(to).toISOString())
    const { count: n } = await expectListIs(`from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`)
    expect(n).toBe(18_000) // 30 minutes of a row every 100 ms
  })

  it('shows every stored field of an activity in its drawer', async () => {
    await page.goto(`${origin}/#/activities?trace_id=${hex32(5001)}`)
    const { first } = await expectListIs(`from=now-24h&trace_id=${hex32(5001)}`)
    await page.locator('[data-testid=list] [role=row]').first().click()
    const drawer = page.getByTestId('drawer')
    await expect.poll(() => drawer.isVisible()).toBe(true)
    const row = first[0]
    for (const f of ['id', 'timestamp', 'action', 'source', 'category', 'severity', 'status', 'actor_id', 'tenant_id', 'service', 'entity_type', 'entity_id', 'trace_id']) {
      expect(await drawer.locator(`[data-field=${f}] dd`).innerText(), f).toContain(String(row[f]))
    }
    expect(JSON.parse(await page.getByTestId('details').innerText())).toEqual(row.details)
    expect(await drawer.innerText()).toContain('http.method')
    await page.screenshot({ path: join(SHOTS, 'activity-detail.png') })
    await page.keyboard.press('Escape')
    await expect.poll(() => drawer.count()).toBe(0)
  })

  it('moves through the list with the keyboard', async () => {
    await page.goto(`${origin}/#/activities?actor=u5`)
    const { first } = await expectListIs('from=now-24h&actor=u5')
    await page.getByTestId('list').focus()
    for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowDown')
    expect(await page.locator('[role=row][aria-selected=true]').getAttribute('data-id')).toBe(first[2].id)
    await page.keyboard.press('Enter')
    expect(await page.getByTestId('drawer').locator('[data-field=id] dd').innerText()).toBe(first[2].id)
    await page.keyboard.press('Escape')
  })

  it('scrolls to the end of 100,000 rows, loading every page once and never holding more than the visible rows', async () => {
    const pages: string[] = []
    const onRequest = (r: { url(): string }) => {
      const u = new URL(r.url())
      if (u.pathname === '/api/v1/activities') pages.push(u.searchParams.get('cursor') ?? '')
    }
    page.on('request', onRequest)
    await page.goto(`${origin}/#/activities`)
    await expectListIs('from=now-24h')
    let maxRows = 0
    for (let i = 0; i < 5000; i++) {
      await page.getByTestId('list').evaluate((el) => (el.scrollTop = el.scrollHeight))
      await page.waitForTimeout(15)
      if (i % 20 === 0) maxRows = Math.max(maxRows, await domRows())
      if ((await page.getByTestId('match-count').innerText()).includes(`${N.toLocaleString('en-US')} loaded`)) break
    }
    page.off('request', onRequest)
    expect(await page.getByTestId('match-count').innerText()).toContain(`${N.toLocaleString('en-US')} loaded`)
    expect(pages.length).toBe(N / 200)
    expect(new Set(pages).size).toBe(pages.length)
    expect(maxRows).toBeLessThan(60)
    // The end of the list is the end of the API's walk (the last page came in below the view: scroll to it).
    await page.getByTestId('list').evaluate((el) => (el.scrollTop = el.scrollHeight))
    await page.waitForTimeout(200)
    expect((await visibleIds()).at(-1)).toBe((await allApiIds('from=now-24h')).at(-1))
  }, 240_000)

  it('shows a row posted now in the live tail within 2 s', async () => {
    await page.goto(`${origin}/#/live`)
    await expect.poll(() => page.getByTestId('tail').innerText(), { timeout: 10_000 }).not.toContain('Waiting')
    const action = `live.check.${Date.now()}`
    const res = await post(c.url, JSON.stringify({ action, source: 'user', actor_id: 'live-user' }))
    expect(res.status).toBe(200)
    const acked = Date.now()
    await page.getByTestId('tail').getByText(action).waitFor({ timeout: 2_000 })
    expect(Date.now() - acked).toBeLessThan(2_000)
    expect(await page.locator('[data-testid=tail] .row').count()).toBeLessThanOrEqual(500)
    // The row counts as an arrival: the rate over the last 10 s is above 0.
    await expect.poll(async () => parseFloat(await page.getByTestId('tail-rate').innerText()), { timeout: 3_000 }).toBeGreaterThan(0)
    await page.getByRole('button', { name: /Pause/ }).click()
    expect(await page.getByTestId('tail-rate').innerText()).toBe('paused')
    await page.screenshot({ path: join(SHOTS, 'live-tail.png') })
  })

  it('draws the values /api/v1/trends gives', async () => {
    await page.goto(`${origin}/#/trends?from=now-6h&interval=hour&metric=count`)
    await page.getByTestId('chart').locator('canvas').waitFor()
    await page.screenshot({ path: join(SHOTS, 'trends.png') })
    await page.locator('details.values summary').click()
    const shown = await page.locator('[data-testid=trend-values] tbody tr').evaluateAll((rows) => rows.map((r) => [(r as HTMLElement).dataset.time, Number(r.querySelectorAll('td')[1]!.textContent)]))
    const want = await api('/trends?from=now-6h&interval=hour&metrics=count')
    expect(shown).toEqual(want.buckets.map((b: any) => [b.time, b.count]))
    expect(Number((await page.getByTestId('trend-total').innerText()).split('\n')[1]!.replace(/,/g, ''))).toBe(want.totals.count)
  })

  it('shows breakdowns, the health score and the collector’s state', async () => {
    await page.goto(`${origin}/#/health`)
    await page.getByTestId('breakdown').locator('tbody tr').first().waitFor()
    const b = await api('/breakdown?from=now-24h&dimension=source&limit=20')
    const rows = await page.getByTestId('breakdown').locator('tbody tr').evaluateAll((rs) => rs.map((r) => [(r as HTMLElement).dataset.key, r.querySelectorAll('td')[1]!.textContent]))
    expect(rows).toEqual(b.items.map((i: any) => [i.key, i.count.toLocaleString('en-US')]))
    await expect.poll(() => page.getByTestId('collector-state').innerText()).toContain('queue clickhouse')
    await expect.poll(() => page.getByTestId('health-score').innerText()).toMatch(/\d+\s+(healthy|degraded|unhealthy)/)
    await page.screenshot({ path: join(SHOTS, 'health.png') })
  })

  it('pages through the audit trail', async () => {
    await page.goto(`${origin}/#/audit?actor=u15`)
    await page.getByTestId('audit-table').waitFor({ timeout: 5000 }).catch(async (e) => {
      throw new Error(`${e}\n${await page.locator('main').innerText()}`)
    })
    const want = await api('/audit?from=now-7d&actor=u15&limit=50')
    const ids = await page.locator('[data-testid=audit-table] tbody tr').evaluateAll((rs) => rs.map((r) => (r as HTMLElement).dataset.id))
    expect(ids).toEqual(want.data.map((r: any) => r.id))
    await page.getByText('Older →').click()
    const next = await api(`/audit?from=now-7d&actor=u15&limit=50&cursor=${want.next_cursor}`)
    await expect.poll(() => page.locator('[data-testid=audit-table] tbody tr').first().getAttribute('data-id')).toBe(next.data[0].id)
    await page.screenshot({ path: join(SHOTS, 'audit.png') })
  })

  it('exports the current filter: the same rows as /api/v1/export', async () => {
    await page.goto(`${origin}/#/activities?actor=u17`)
    await expectListIs('from=now-24h&actor=u17')
    for (const format of ['csv', 'ndjson']) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId(`export-${format}`).click()])
      const file = await download.path()
      const want = await (await fetch(`${c.url}/api/v1/export?from=now-24h&actor=u17&format=${format}`)).text()
      expect(readFileSync(file, 'utf8'), format).toBe(want)
    }
  })

  it('is readable narrow and in dark mode', async () => {
    const dark = await openPage(browser, { width: 600, height: 800, colorScheme: 'dark' })
    await dark.page.goto(`${origin}/#/activities?compact=1`)
    await dark.page.locator('[data-testid=list] [role=row]').first().waitFor()
    expect(await dark.page.evaluate(() => document.documentElement.scrollWidth <= innerWidth)).toBe(true)
    const bg = await dark.page.evaluate(() => getComputedStyle(document.body).backgroundColor)
    expect(bg).toBe('rgb(13, 17, 23)')
    await dark.page.screenshot({ path: join(SHOTS, 'activities-dark-narrow.png') })
    expect(dark.errors).toEqual([])
    await dark.page.context().close()
  })

  it('logged no console error and sent no request off the collector’s origin', () => {
    expect(w.errors).toEqual([])
    const foreign = w.requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('blob:') && !u.startsWith('data:'))
    expect(foreign).toEqual([])
    expect(w.requests.some((u) => u.endsWith('/favicon.svg'))).toBe(true)
  })
})

describe('the monitor of a collector with API keys', () => {
  const dir = tempDir()
  const KEY = 'monitor-test-key-0123456789abcdef'
  let c: RunningCollector
  let browser: Browser

  beforeAll(async () => {
    c = await startCollector(testConfig(dir.path, { auth: { keys: [{ name: 'reader', key: KEY, scopes: ['read', 'ingest'] }] } }))
    const r = await fetch(`${c.url}/v1/activities`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify({ action: 'keyed.row', source: 'user' }) })
    expect(r.status).toBe(200)
    browser = await launch()
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await c?.collector.shutdown()
    dir.remove()
  })

  it('asks for a key, keeps it for the tab, sends it in a header and never in a URL', async () => {
    const w = await openPage(browser)
    await w.page.goto(`${c.url}/`)
    const prompt = w.page.getByRole('dialog', { name: 'API key needed' })
    await prompt.waitFor()
    await w.page.screenshot({ path: join(SHOTS, 'key-prompt.png') })
    await w.page.fill('input[name=api-key]', 'wrong-key-wrong-key-wrong-key')
    await w.page.click('button[type=submit]')
    await expect.poll(() => prompt.innerText()).toMatch(/That key was refused: .+/)
    await w.page.fill('input[name=api-key]', KEY)
    await w.page.click('button[type=submit]')
    await w.page.getByText('keyed.row').first().waitFor({ timeout: 15_000 })
    expect(await w.page.evaluate(() => sessionStorage.getItem('actline.apiKey'))).toBe(KEY)
    expect(await w.page.evaluate(() => localStorage.length)).toBe(0)
    expect(w.requests.filter((u) => u.includes(KEY) || u.includes(encodeURIComponent(KEY)))).toEqual([])
    // The 401s before the key are answers, not errors of the page.
    expect(w.errors.filter((e) => !/401/.test(e))).toEqual([])
  })
})

