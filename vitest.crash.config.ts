import { defineConfig } from 'vitest/config'

/** `npm run test:crash`: real processes killed with SIGKILL; minutes, so kept out of `npm test`. */
export default defineConfig({
  test: {
    include: ['test/crash/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // One at a time: each measures a whole collector process on 2 cores.
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 180_000,
  },
})
