/**
 * npm run bench:validate-ab — the receiver's per-event validation
 * (`parseActivity`) of two trees side by side, on bench:ingest's event mix,
 * rounds interleaved so the machine's drift hits both alike.
 *
 *   git worktree add /tmp/before <commit> && ln -s "$PWD/node_modules" /tmp/before/
 *   BENCH_BEFORE=/tmp/before npm run bench:validate-ab
 *
 * Options (env): BENCH_ROUNDS (default 40), BENCH_EVENTS per round (default 5000).
 */
import { resolve } from 'node:path'
import { makeEvents } from './load-generator.ts'

const before = process.env.BENCH_BEFORE
if (!before) {
  console.error('set BENCH_BEFORE to a checkout of the tree to compare with: see the header of bench/validate-ab.ts')
  process.exit(2)
}
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40)
const EVENTS = Number(process.env.BENCH_EVENTS ?? 5000)

type Parse = (input: unknown, receivedAt: number) => unknown
const [a, b] = (await Promise.all([import(resolve(before, 'schemas/activity.ts')), import('../schemas/activity.ts')])) as { parseActivity: Parse }[]
const events = makeEvents(EVENTS, 1).map((line) => JSON.parse(line) as unknown)

function usPerEvent(parse: Parse): number {
  const started = process.hrtime.bigint()
  for (const e of events) parse(e, Date.now())
  return Number(process.hrtime.bigint() - started) / 1000 / events.length
}

const runs: [number[], number[]] = [[], []]
for (let i = 0; i < ROUNDS; i++) {
  runs[0].push(usPerEvent(a!.parseActivity))
  runs[1].push(usPerEvent(b!.parseActivity))
  if ((i + 1) % 10 === 0) console.error(`round ${i + 1}/${ROUNDS}`)
}
const median = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1]!
const [m0, m1] = [median(runs[0]), median(runs[1])]
console.log(`parseActivity, ${EVENTS} events x ${ROUNDS} rounds, median: before ${m0.toFixed(2)} us/event, after ${m1.toFixed(2)} us/event, after/before ${(m1 / m0).toFixed(2)}`)
