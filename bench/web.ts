/**
 * npm run bench:web — the monitor in Debian's Chromium on bench:query's store
 * of 10,000,000 activities (loaded by `npm run bench:query` first, or
 * BENCH_DIR), served by `actline api` as a real process:
 *   - time to first rows: opening `/` in a fresh browser context (no cache)
 *     until the first row is in the DOM, from the page's own clock
 *     (performance.now(), zero at navigation start);
 *   - scrolling 10,000 rows at a steady 600 px a frame, pages loading as it
 *     goes: every frame's duration from requestAnimationFrame;
 *   - the bundle's size, gzip -9 as served.
 * Options (env): BENCH_ROWS (the store to use, default 10000000), BENCH_RUNS (default 10).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { launch } from '../test/helpers/browser.ts'
import { startNodeProcess, writeConfig } from '../test/helpers/process.ts'
import { quantile } from './query-scenarios.ts'

const ROWS = Number(process.env.BENCH_ROWS ?? 10_000_000)
const RUNS = Number(process.env.BENCH_RUNS ?? 10)
const dir = process.env.BENCH_DIR ?? join(tmpdir(), `actline-bench-query-${ROWS}`)
const root = join(import.meta.dirname, '..')
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`)

/**
 * Scrolls the list 600 px a frame until 10,000 rows have passed, timing
 * each frame. A string, not a function: tsx would wrap a function's inner
 * functions in a helper the page does not have.
 */
const SCROLL = `new Promise((resolve) => {
  const list = document.querySelector('[data-testid=list]')
  const rowHeight = document.querySelector('[data-testid=list] [role=row]').offsetHeight
  const target = 10000 * rowHeight
  const out = []
  const start = performance.now()
  let last = start
  function step(t) {
    out.push(t - last)
    last = t
    list.scrollTop += 600
    if (list.scrollTop + list.clientHeight >= target || performance.now() - start > 120000) resolve({ frames: out.slice(1), rows: Math.round(list.scrollTop / rowHeight), ms: performance.now() - start })
    else requestAnimationFrame(step)
  }
  requestAnimationFrame(step)
})`

async function main(): Promise<void> {
  if (!existsSync(join(dir, 'loaded'))) throw new Error(`no loaded store at ${dir}: run npm run bench:query first (or set BENCH_DIR)`)
  log(`machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`)
  const assets = join(root, 'dist/web/assets')
  const bundle = readdirSync(assets).map((f) => ({ f, raw: readFileSync(join(assets, f)).length, gz: gzipSync(readFileSync(join(assets, f)), { level: 9 }).length }))
  const config = writeConfig(dir, `data_dir: ${dir}\nserver: { port: 0, log_level: warn, clickhouse_http: { enabled: false } }\nexporters: { postgres: { enabled: false } }\napi: { rate_limit: { enabled: false } }\n`)
  const api = await startNodeProcess([join(root, 'bin/actline.js'), 'api', '--config', config], {}, 'actline api')
  const browser = await launch()
  try {
    // The monitor's default view: the last 24 hours, newest first.
    const first: number[] = []
    for (let i = 0; i < RUNS + 1; i++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 720 } })
      const page = await context.newPage()
      await page.addInitScript(() => {
        new MutationObserver((_m, obs) => {
          if (document.querySelector('[data-testid=list] [role=row]')) {
            ;(window as unknown as { firstRow: number }).firstRow = performance.now()
            obs.disconnect()
          }
        }).observe(document, { childList: true, subtree: true })
      })
      await page.goto(`${api.url}/`)
      await page.waitForFunction(() => (window as unknown as { firstRow?: number }).firstRow !== undefined, undefined, { timeout: 30_000 })
      const ms = await page.evaluate(() => (window as unknown as { firstRow: number }).firstRow)
      if (i > 0) first.push(ms) // the first opening warms the engine's caches
      log(`open ${i}: first rows after ${ms.toFixed(0)} ms${i === 0 ? ' (warm-up, not counted)' : ''}`)
      await context.close()
    }
    const frames: number[] = []
    const scrolls: { rows: number; ms: number }[] = []
    for (let i = 0; i < 3; i++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 720 } })
      const page = await context.newPage()
      await page.goto(`${api.url}/`)
      await page.locator('[data-testid=list] [role=row]').first().waitFor()
      const r = (await page.evaluate(SCROLL)) as { frames: number[]; rows: number; ms: number }
      frames.push(...r.frames)
      scrolls.push({ rows: r.rows, ms: r.ms })
      const sorted = [...r.frames].sort((a, b) => a - b)
      log(`scroll ${i + 1}: ${r.rows} rows in ${(r.ms / 1000).toFixed(1)} s, ${r.frames.length} frames, p50 ${quantile(sorted, 0.5).toFixed(1)} ms, p95 ${quantile(sorted, 0.95).toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`)
      await context.close()
    }
    first.sort((a, b) => a - b)
    frames.sort((a, b) => a - b)
    console.log(`\n| measure | p50 | p95 | max |\n| --- | ---: | ---: | ---: |`)
    console.log(`| time to first rows, fresh context (${RUNS} opens) | ${quantile(first, 0.5).toFixed(0)} ms | ${quantile(first, 0.95).toFixed(0)} ms | ${first.at(-1)!.toFixed(0)} ms |`)
    console.log(`| frame while scrolling 10,000 rows (${frames.length} frames, 3 runs) | ${quantile(frames, 0.5).toFixed(1)} ms | ${quantile(frames, 0.95).toFixed(1)} ms | ${frames.at(-1)!.toFixed(1)} ms |`)
    console.log(`\nScrolls: ${scrolls.map((s) => `${s.rows.toLocaleString('en-US')} rows in ${(s.ms / 1000).toFixed(1)} s`).join(', ')}`)
    console.log(`\n| asset | bytes | gzip -9 |\n| --- | ---: | ---: |`)
    for (const b of bundle) console.log(`| ${b.f} | ${b.raw.toLocaleString('en-US')} | ${b.gz.toLocaleString('en-US')} |`)
  } finally {
    await browser.close()
    api.child.kill('SIGTERM')
    await api.exited
  }
}

await main()
process.exit(0)
