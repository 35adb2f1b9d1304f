import { defineConfig } from 'vitest/config'

/**
 * `npm run test:faults`: every fault class of docs/architecture.md ("What
 * the collector does when things go wrong") against real processes, real
 * stores, a real small filesystem. A few minutes; run by .ci/run.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // One at a time: each runs a whole collector process on 2 cores.
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
})
