import { defineConfig } from 'vitest/config'

// `npm run test:packages`: pack, install into scratch directories, run (test/packages). Needs the npm registry or its cache.
export default defineConfig({
  test: {
    include: ['test/packages/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
})
