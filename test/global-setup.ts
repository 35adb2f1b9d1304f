import { execFileSync } from 'node:child_process'

/** Tests that spawn `actline` run the compiled artifact users run, so build it once first. */
export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
}
