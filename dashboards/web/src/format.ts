/** How the monitor writes times and numbers: the browser's zone and locale, UTC on hover. */
const local = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false })
const localMs = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3, hour12: false })
const numbers = new Intl.NumberFormat()

export function localTime(iso: string): string {
  return local.format(new Date(iso))
}

export function clockTime(iso: string): string {
  return localMs.format(new Date(iso))
}

/** The title a time shows on hover: the same instant in UTC, as stored. */
export function utcTitle(iso: string): string {
  return `${iso.replace('T', ' ').replace('Z', '')} UTC`
}

export function num(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '–'
  return digits ? n.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits }) : numbers.format(Math.round(n))
}

export function percent(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined ? '–' : `${(n * 100).toFixed(digits)}%`
}

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`
}
