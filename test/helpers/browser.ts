/**
 * Debian's Chromium through playwright-core, never a downloaded browser.
 * Every page records its console errors and every request it makes, so a
 * test can say "no errors" and "nothing left the collector's origin".
 */
import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
}

export interface WatchedPage {
  page: Page
  errors: string[]
  requests: string[]
}

export async function openPage(browser: Browser, options: { width?: number; height?: number; colorScheme?: 'light' | 'dark' } = {}): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: options.width ?? 1280, height: options.height ?? 720 }, colorScheme: options.colorScheme ?? 'light', acceptDownloads: true })
  const page = await context.newPage()
  const errors: string[] = []
  const requests: string[] = []
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
  page.on('pageerror', (e) => errors.push(String(e)))
  page.on('requestfailed', (r) => !r.failure()?.errorText.includes('ERR_ABORTED') && errors.push(`${r.url()}: ${r.failure()?.errorText}`))
  page.on('request', (r) => requests.push(r.url()))
  return { page, errors, requests }
}
