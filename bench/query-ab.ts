/**
 * npm run bench:query-ab — the query API of two builds side by side: each
 * serves its own store as an `actline api` process, and every request
 * alternates between them (uncached), so the machine's drift hits both
 * alike. For "did this change make queries faster", where two runs of
 * bench:query hours apart would compare machines.
 *
 *   git worktree add /tmp/before <commit> && ln -s "$PWD/node_modules" /tmp/before/
 *   (cd /tmp/before && npx tsc -p tsconfig.build.json && BENCH_DIR=/tmp/q-before BENCH_RUNS=3 npx tsx bench/query.ts)
 *   BENCH_DIR=/tmp/q-after BENCH_RUNS=3 npm run bench:query          # loads this build's store
 *   BENCH_BEFORE=/tmp/before BENCH_BEFORE_DIR=/tmp/q-before BENCH_DIR=/tmp/q-after npm run bench:query-ab
 *
 * Options (env): BENCH_RUNS (per scenario and build, default 40).
 */
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { startNodeProcess, writeConfig } from '../test/helpers/process.ts'
import { quantile, queryScenarios } from './query-scenarios.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 40)
const DAY = 86_400_000
const end = Math.floor(Date.now() / DAY) * DAY
const before = process.env.BENCH_BEFORE
const beforeDir = process.env.BENCH_BEFORE_DIR
const afterDir = process.env.BENCH_DIR
if (!before || !beforeDir || !afterDir) {
  console.error('set BENCH_BEFORE (a built checkout), BENCH_BEFORE_DIR (its loaded store) and BENCH_DIR (this build\'s): see the header of bench/query-ab.ts')
  process.exit(2)
}

const agent = new Agent({ keepAlive: true, maxSockets: 2 })
function call(url: string, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const req = request(url, { method, agent }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`${url}: HTTP ${res.statusCode}`))))
    })
    req.on('error', reject)
    req.end()
  })
}

const builds = [
  { name: 'before', root: before, dir: beforeDir },
  { name: 'after', root: join(import.meta.dirname, '..'), dir: afterDir },
]
const servers = []
for (const b of builds) {
  const config = writeConfig(b.dir, `data_dir: ${b.dir}\nserver: { port: 0, log_level: warn }\nexporters: { postgres: { enabled: false } }\napi: { rate_limit: { enabled: false } }\n`)
  servers.push(await startNodeProcess([join(b.root, 'bin/actline.js'), 'api', '--config', config], {}, `actline api (${b.name})`))
}
const bases = servers.map((s) => `${s.url}/api/v1`)
console.log(`| scenario, uncached (${RUNS} runs each, interleaved) | before p50 | before p95 | after p50 | after p95 | after/before p50 |`)
console.log('| --- | ---: | ---: | ---: | ---: | ---: |')
for (const s of queryScenarios(end)) {
  const times = bases.map(() => [] as number[])
  for (let i = 0; i < 3; i++) for (const base of bases) await call(`${base}${s.path}`)
  for (let i = 0; i < RUNS; i++) {
    for (const k of i % 2 ? [1, 0] : [0, 1]) {
      await call(`${bases[k]}/cache/clear`, 'POST')
      times[k]!.push(await call(`${bases[k]}${s.path}`))
    }
  }
  const [b, a] = times.map((t) => t.sort((x, y) => x - y)) as [number[], number[]]
  process.stderr.write(`${s.name}: done\n`)
  console.log(`| ${s.name} | ${quantile(b, 0.5).toFixed(1)} | ${quantile(b, 0.95).toFixed(1)} | ${quantile(a, 0.5).toFixed(1)} | ${quantile(a, 0.95).toFixed(1)} | ${(quantile(a, 0.5) / quantile(b, 0.5)).toFixed(2)} |`)
}
for (const s of servers) s.child.kill('SIGTERM')
process.exit(0)
