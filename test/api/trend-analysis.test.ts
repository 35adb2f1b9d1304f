import { describe, expect, it } from 'vitest'
import { forecast, linearRegression, movingAverage, percentChange, robustOutliers } from '../../api/trend-analysis.ts'

describe('trend analysis, against figures computed by hand', () => {
  it('moving averages are trailing, and null until the window is full', () => {
    expect(movingAverage([1, 2, 3, 4, 5, 6], 3)).toEqual([null, null, 2, 3, 4, 5])
    const ten = Array.from({ length: 10 }, (_, i) => i + 1)
    expect(movingAverage(ten, 7)).toEqual([null, null, null, null, null, null, 4, 5, 6, 7])
    expect(movingAverage(ten, 30).every((v) => v === null)).toBe(true)
  })

  it('least squares of y = [2, 4, 5, 4, 5] on x = 0..4: slope 0.6, intercept 2.8, R² 0.6', () => {
    // x̄ = 2, ȳ = 4, Sxy = 6, Sxx = 10, Syy = 6, SSE = 6 - 0.6·6 = 2.4
    const fit = linearRegression([2, 4, 5, 4, 5])!
    expect(fit.slope).toBeCloseTo(0.6, 12)
    expect(fit.intercept).toBeCloseTo(2.8, 12)
    expect(fit.r2).toBeCloseTo(0.6, 12)
    expect(fit.residualStdError).toBeCloseTo(Math.sqrt(0.8), 12)
  })

  it('skips null buckets, and a flat series has no R²', () => {
    const fit = linearRegression([1, null, 3, null, 5])!
    expect(fit.slope).toBeCloseTo(1, 12)
    expect(fit.intercept).toBeCloseTo(1, 12)
    expect(fit.r2).toBeCloseTo(1, 12)
    expect(linearRegression([7, 7, 7])!.r2).toBeNull()
    expect(linearRegression([7])).toBeNull()
  })

  it('forecasts along the line with a 95% prediction band', () => {
    const fit = linearRegression([2, 4, 5, 4, 5])!
    const [next] = forecast(fit, 5, 1)
    // x = 5: 2.8 + 0.6·5 = 5.8; half-width 1.96·sqrt(0.8)·sqrt(1 + 1/5 + 9/10) = 2.5405
    expect(next!.value).toBeCloseTo(5.8, 10)
    expect(next!.upper - next!.value).toBeCloseTo(1.96 * Math.sqrt(0.8) * Math.sqrt(2.1), 10)
    expect(next!.value - next!.lower).toBeCloseTo(1.96 * Math.sqrt(0.8) * Math.sqrt(2.1), 10)
    // The band widens further from the data.
    const [, , far] = forecast(fit, 5, 3)
    expect(far!.upper - far!.value).toBeGreaterThan(next!.upper - next!.value)
  })

  it('never forecasts below zero', () => {
    const [p] = forecast(linearRegression([10, 5, 1])!, 3, 2)
    expect(p!.value).toBe(0)
    expect(p!.lower).toBe(0)
  })

  it('percent change, and none against a zero base', () => {
    expect(percentChange(150, 100)).toBe(50)
    expect(percentChange(50, 100)).toBe(-50)
    expect(percentChange(5, 0)).toBeNull()
  })

  it('flags the spike by median/MAD and leaves ordinary variation alone', () => {
    // median 10; absolute deviations sorted [0,0,0,0,1,1,1,1,40] -> MAD 1; 50 scores 0.6745·40 = 26.98
    const r = robustOutliers([10, 11, 9, 10, 10, 50, 10, 11, 9], 3.5)!
    expect(r.median).toBe(10)
    expect(r.mad).toBe(1)
    expect(r.outliers).toEqual([{ index: 5, value: 50, score: expect.closeTo(26.98, 2) }])
  })

  it('falls back to the mean absolute deviation when most points are equal', () => {
    const r = robustOutliers([5, 5, 5, 5, 5, 5, 0, 30], 3.5)!
    expect(r.mad).toBe(0)
    expect(r.outliers.map((o) => o.value)).toEqual([30])
    expect(robustOutliers([4, 4, 4, 4], 3.5)!.outliers).toEqual([])
  })
})
