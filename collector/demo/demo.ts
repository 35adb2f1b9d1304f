/**
 * `actline demo`: the collector on embedded stores in a directory of its
 * own, fed with the traffic of traffic.ts through its real HTTP intake —
 * first a backfill of history with a progress bar, then live traffic at a
 * gentle rate — and the URLs to open. A real install's ./data is never
 * touched: without --data-dir the demo gets a new temporary directory,
 * removed when it stops.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseConfig } from '../config.ts'
import { createCollector } from '../collector.ts'
import { createLogger } from '../server/logger.ts'
import { sleep } from '../../lib/sleep.ts'
import { retryAfterMs } from '../../lib/backoff.ts'
import type { ActivityInputType } from '../../schemas/activity.ts'
import { activityAt, history, incidents, random } from './traffic.ts'

export interface DemoOptions {
  dataDir?: string
  days: number
  perDay: number
  /** Live activities per second once the backfill is done; 0 stops after it. */
  rate: number
  port: number
  clickhousePort: number
  seed: number
  out: NodeJS.WritableStream
}

const DAY = 86_400_000
/** A marker that the directory's history is in: a second demo on it goes live at once instead of sending it twice. */
const BACKFILLED = '.demo-backfilled'

export async function runDemo(o: DemoOptions, signal: AbortSignal): Promise<void> {
  const dataDir = o.dataDir ? resolve(o.dataDir) : mkdtempSync(join(tmpdir(), 'actline-demo-'))
  mkdirSync(dataDir, { recursive: true })
  const config = parseConfig({
    data_dir: dataDir,
    server: { port: o.port, log_level: 'error', clickhouse_http: { port: o.clickhousePort } },
    api: { rate_limit: { enabled: false } },
  })
  // The demo's own lines say what matters; the collector's warnings (no API keys: loopback only) would bury them.
  const collector = await createCollector(config, { logger: createLogger('error') })
  const { url, clickhouseHttp } = await collector.start()
  const say = (line: string) => o.out.write(`${line}\n`)
  say(`actline demo: collector on ${url}, data in ${dataDir}`)
  try {
    const now = Date.now()
    const from = now - o.days * DAY
    const traffic = { perDay: o.perDay, seed: o.seed, incidents: incidents(from, now, o.seed) }
    if (existsSync(join(dataDir, BACKFILLED))) say(`history already in ${dataDir}: going live`)
    else {
      await backfill(url, from, now, traffic, o, signal)
      await drained(url, say, signal)
      writeFileSync(join(dataDir, BACKFILLED), new Date(now).toISOString())
    }
    if (signal.aborted) return
    printUrls(say, url, clickhouseHttp, traffic.incidents.length, o.days)
    if (o.rate <= 0) return
    say(`live traffic: ~${o.rate} activities/s; Ctrl-C stops the demo`)
    const rnd = random(o.seed + 1)
    while (!signal.aborted) {
      const batch: ActivityInputType[] = []
      // Poisson arrivals in the second just past, by exponential gaps.
      const start = Date.now()
      for (let t = start - 1000 - Math.log(1 - rnd()) * (1000 / o.rate); t < start; t -= Math.log(1 - rnd()) * (1000 / o.rate)) batch.push(activityAt(Math.floor(t), traffic, rnd))
      if (batch.length) await send(url, batch, signal)
      await sleep(1000, signal).catch(() => {})
    }
  } finally {
    await collector.shutdown()
    // A directory the demo made for itself goes with it; one it was given stays, history and all.
    if (!o.dataDir) rmSync(dataDir, { recursive: true, force: true })
  }
}

async function backfill(url: string, from: number, to: number, traffic: Parameters<typeof history>[2], o: DemoOptions, signal: AbortSignal): Promise<void> {
  const started = Date.now()
  let sent = 0
  let batch: ActivityInputType[] = []
  const days = Math.ceil((to - from) / DAY)
  const bar = (day: number) => {
    const width = 30
    const done = Math.round((day / days) * width)
    const rate = Math.round(sent / Math.max(0.001, (Date.now() - started) / 1000))
    o.out.write(`\rbackfill [${'#'.repeat(done)}${'.'.repeat(width - done)}] day ${day}/${days}, ${(sent + batch.length).toLocaleString('en-US')} activities, ${rate.toLocaleString('en-US')}/s `)
  }
  for (let day = 0; day < days && !signal.aborted; day++) {
    for (const a of history(from + day * DAY, Math.min(to, from + (day + 1) * DAY), { ...traffic, seed: traffic.seed + day })) {
      batch.push(a)
      if (batch.length === 5000) {
        await send(url, batch, signal)
        sent += batch.length
        batch = []
      }
    }
    bar(day + 1)
  }
  if (batch.length) {
    await send(url, batch, signal)
    sent += batch.length
    batch = []
  }
  bar(days)
  o.out.write(`\nbackfill: ${sent.toLocaleString('en-US')} activities over ${days} days in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
}

/**
 * Until every exporter has passed the log's end (its queue gauge on
 * /metrics at 0): acknowledged is durable, not yet queryable, and a demo
 * that printed its URLs before would show a partial history.
 */
async function drained(url: string, say: (line: string) => void, signal: AbortSignal): Promise<void> {
  say('waiting for the stores to take the backfill...')
  while (!signal.aborted) {
    const text = await (await fetch(`${url}/metrics`, { signal })).text()
    const queues = [...text.matchAll(/^actline_exporter_queue_activities\{[^}]*\} (\S+)$/gm)].map((m) => Number(m[1]))
    if (queues.length > 0 && queues.every((q) => q === 0)) return
    await sleep(250, signal)
  }
}

/** One NDJSON request, waited out and sent again while the collector sheds load (429/503 with Retry-After). */
async function send(url: string, batch: readonly ActivityInputType[], signal: AbortSignal): Promise<void> {
  const body = batch.map((a) => JSON.stringify(a)).join('\n')
  for (;;) {
    const res = await fetch(`${url}/v1/activities`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body, signal })
    const text = await res.text()
    if (res.ok) {
      const parsed = JSON.parse(text) as { rejected?: number }
      if (parsed.rejected) throw new Error(`the collector rejected ${parsed.rejected} demo activities: ${text.slice(0, 300)}`)
      return
    }
    if (res.status !== 429 && res.status !== 503) throw new Error(`the collector answered ${res.status}: ${text.slice(0, 300)}`)
    await sleep(retryAfterMs(res.headers.get('retry-after')) ?? 1000, signal)
  }
}

function printUrls(say: (line: string) => void, url: string, clickhouseHttp: string | undefined, incidents: number, days: number): void {
  const week = new Date(Date.now() - 7 * DAY).toISOString().slice(0, 10)
  say('')
  say(`The history has ${incidents} incidents (a service failing for a few hours). Open:`)
  say(`  query API     ${url}/api/v1/activities?limit=20`)
  say(`  trends        ${url}/api/v1/trends?interval=day&from=${week}`)
  say(`  anomalies     ${url}/api/v1/anomalies?metric=error_rate&from=now-${days}d   (the incidents' hours)`)
  say(`  OpenAPI       ${url}/api/v1/openapi.json`)
  say(`  metrics       ${url}/metrics`)
  if (clickhouseHttp) {
    say(`  ClickHouse    ${clickhouseHttp}  (read-only; try: curl '${clickhouseHttp}/?query=SELECT+action,sum(events)+FROM+actline.activities_by_day+GROUP+BY+action+ORDER+BY+2+DESC+LIMIT+5')`)
    const { hostname, port } = new URL(clickhouseHttp)
    say(`  Grafana       GF_PATHS_PROVISIONING=$PWD/dashboards/grafana/provisioning ACTLINE_DASHBOARDS_PATH=$PWD/dashboards/grafana \\`)
    say(`                ACTLINE_CLICKHOUSE_HOST=${hostname} ACTLINE_CLICKHOUSE_PORT=${port} ACTLINE_CLICKHOUSE_USER=default grafana server   (docs/grafana.md)`)
  }
  say('')
}
