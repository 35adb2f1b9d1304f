import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Minutes of SIGKILL and overload: `npm run test:crash` (vitest.crash.config.ts).
    exclude: ['test/crash/**', 'test/faults/**', 'test/packages/**', '**/node_modules/**'],
    globalSetup: ['test/global-setup.ts'],
    // The embedded ClickHouse binds one data directory per process: every
    // test file runs in its own process, with its own directory.
    pool: 'forks',
    isolate: true,
    fileParallelism: true,
    maxWorkers: 2,
    // First start of an embedded PostgreSQL runs initdb (~8 s on 2 cores).
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
})
