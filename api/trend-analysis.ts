/**
 * The analysis /trends and /anomalies put beside a series: moving averages,
 * least-squares regression, forecast band, period-over-period change and a
 * robust outlier test. Pure functions over numbers (null = no value), so
 * tests check them against hand-computed figures.
 */

/** Trailing simple moving average; null until `window` values have been seen, or when one in the window is null. */
export function movingAverage(values: readonly (number | null)[], window: number): (number | null)[] {
  return values.map((_, i) => {
    if (i + 1 < window) return null
    let sum = 0
    for (let j = i + 1 - window; j <= i; j++) {
      const v = values[j]
      if (v === null || v === undefined) return null
      sum += v
    }
    return sum / window
  })
}

export interface Regression {
  /** Change per bucket. */
  slope: number
  /** Value at bucket 0 (the first bucket of the range). */
  intercept: number
  /** Share of the variance the line explains, 0..1; null when the series is flat. */
  r2: number | null
  /** Points used (buckets with a value). */
  n: number
  /** Residual standard error, for the forecast band; null with fewer than 3 points. */
  residualStdError: number | null
  meanX: number
  sxx: number
}

/** Ordinary least squares of value on bucket index, skipping nulls. Null with fewer than 2 points. */
export function linearRegression(values: readonly (number | null)[]): Regression | null {
  const xs: number[] = []
  const ys: number[] = []
  values.forEach((v, i) => {
    if (v !== null) {
      xs.push(i)
      ys.push(v)
    }
  })
  const n = xs.length
  if (n < 2) return null
  const meanX = xs.reduce((a, b) => a + b, 0) / n
  const meanY = ys.reduce((a, b) => a + b, 0) / n
  let sxx = 0
  let sxy = 0
  let syy = 0
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - meanX
    const dy = ys[i]! - meanY
    sxx += dx * dx
    sxy += dx * dy
    syy += dy * dy
  }
  const slope = sxy / sxx
  const intercept = meanY - slope * meanX
  const sse = Math.max(0, syy - slope * sxy)
  return {
    slope,
    intercept,
    r2: syy === 0 ? null : 1 - sse / syy,
    n,
    residualStdError: n > 2 ? Math.sqrt(sse / (n - 2)) : null,
    meanX,
    sxx,
  }
}

/** z for a two-sided 95% interval; the normal stands in for Student's t (exact enough past ~30 points, and documented). */
const Z95 = 1.96

export interface ForecastPoint {
  /** Bucket index, continuing the series (n, n+1, ...). */
  index: number
  value: number
  lower: number
  upper: number
}

/**
 * The regression line extended `steps` buckets past a series of `length`,
 * with a 95% prediction band: z·s·sqrt(1 + 1/n + (x − x̄)²/Sxx). Bounded
 * below by 0, since every metric here is non-negative.
 */
export function forecast(fit: Regression, length: number, steps: number): ForecastPoint[] {
  return Array.from({ length: steps }, (_, k) => {
    const x = length + k
    const value = fit.intercept + fit.slope * x
    const half = fit.residualStdError === null ? 0 : Z95 * fit.residualStdError * Math.sqrt(1 + 1 / fit.n + (x - fit.meanX) ** 2 / fit.sxx)
    return { index: x, value: Math.max(0, value), lower: Math.max(0, value - half), upper: Math.max(0, value + half) }
  })
}

/** Percent change from `previous` to `current`; null when there is no base to compare with. */
export function percentChange(current: number | null, previous: number | null): number | null {
  if (current === null || previous === null || previous === 0) return null
  return ((current - previous) / previous) * 100
}

export function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export interface Outlier {
  index: number
  value: number
  /** Modified z-score: 0.6745·(x − median)/MAD (Iglewicz and Hoaglin). */
  score: number
}

/**
 * Points whose modified z-score exceeds `threshold` (3.5 is the usual cut).
 * The median and MAD ignore the outliers they look for, unlike mean and
 * standard deviation, which one spike drags along. When more than half the
 * points are equal the MAD is 0: the mean absolute deviation (scaled to the
 * same units) takes its place, and if that is 0 too nothing is an outlier.
 */
export function robustOutliers(values: readonly (number | null)[], threshold: number): { median: number; mad: number; outliers: Outlier[] } | null {
  const present = values.filter((v): v is number => v !== null)
  if (present.length < 3) return null
  const sorted = [...present].sort((a, b) => a - b)
  const med = median(sorted)
  const deviations = present.map((v) => Math.abs(v - med)).sort((a, b) => a - b)
  const mad = median(deviations)
  // 0.6745/MAD for the MAD; 0.7979 = sqrt(2/pi) relates the mean absolute deviation to sigma the same way.
  const scale = mad > 0 ? 0.6745 / mad : (() => {
    const meanAd = deviations.reduce((a, b) => a + b, 0) / deviations.length
    return meanAd > 0 ? 0.7979 / meanAd : 0
  })()
  const outliers: Outlier[] = []
  values.forEach((v, index) => {
    if (v === null || scale === 0) return
    const score = (v - med) * scale
    if (Math.abs(score) > threshold) outliers.push({ index, value: v, score })
  })
  return { median: med, mad, outliers }
}
