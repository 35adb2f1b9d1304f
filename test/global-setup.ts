import { execFileSync } from 'node:child_process'

/**
 * Tests that spawn `actline` run the compiled artifact users run, and the
 * browser tests the monitor users get: build both once first.
 */
export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
  // The SDK as apps load it (node --import @actline/instrumentation/register).
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'instrumentation/tsconfig.json'], { stdio: 'inherit' })
  execFileSync(process.execPath, ['node_modules/vite/bin/vite.js', 'build', '--config', 'dashboards/web/vite.config.ts', '--logLevel', 'warn'], {
    stdio: 'inherit',
    // vitest sets NODE_ENV=test, which Vite would honour with React's development build.
    env: { ...process.env, NODE_ENV: 'production' },
  })
}
