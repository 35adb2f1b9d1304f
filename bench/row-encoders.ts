/**
 * npm run bench:rows — the ClickHouse exporter's row encoder, compiled from
 * ACTIVITY_ROW (schemas/activity-row.ts), against the plain loop over the
 * fields it replaced, on bench:ingest's event mix: JSON.stringify(toRow(a))
 * per activity, rounds interleaved so the machine's drift hits both alike.
 *
 * Options (env): BENCH_ROUNDS (default 80), BENCH_EVENTS per round (default 5000).
 */
import { toRow } from '../exporters/clickhouse/exporter.ts'
import { clickhouseTime } from '../exporters/time-format.ts'
import { ACTIVITY_ROW, type FieldKind } from '../schemas/activity-row.ts'
import { parseActivity, type Activity } from '../schemas/activity.ts'
import { makeEvents } from './load-generator.ts'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 80)
const EVENTS = Number(process.env.BENCH_EVENTS ?? 5000)

/** The same encoding, as a loop over the fields reading each by a computed key. */
const ENCODE: Record<FieldKind, (v: unknown) => unknown> = {
  uuid: (v) => v,
  time: (v) => clickhouseTime(v as number),
  text: (v) => v,
  'optional-text': (v) => v ?? '',
  'optional-number': (v) => v ?? null,
  json: (v) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v)),
  ip: (v) => v ?? null,
  map: (v) => v,
}
const FIELDS = ACTIVITY_ROW.map((f) => ({ name: f.name, encode: ENCODE[f.kind] }))
function loopRow(a: Activity): unknown[] {
  const row = new Array<unknown>(FIELDS.length)
  for (let i = 0; i < FIELDS.length; i++) row[i] = FIELDS[i]!.encode(a[FIELDS[i]!.name])
  return row
}

const activities = makeEvents(EVENTS, 1).map((line) => {
  const parsed = parseActivity(JSON.parse(line))
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues))
  return parsed.activity
})
for (const a of activities) if (JSON.stringify(loopRow(a)) !== JSON.stringify(toRow(a))) throw new Error(`the encoders disagree on ${a.id}`)

function usPerRow(encode: (a: Activity) => unknown): number {
  const started = process.hrtime.bigint()
  let bytes = 0
  for (const a of activities) bytes += JSON.stringify(encode(a)).length
  if (bytes === 0) throw new Error('nothing encoded')
  return Number(process.hrtime.bigint() - started) / 1000 / activities.length
}

const runs: [number[], number[]] = [[], []]
for (let i = 0; i < ROUNDS; i++) {
  runs[0].push(usPerRow(loopRow))
  runs[1].push(usPerRow(toRow))
  if ((i + 1) % 20 === 0) console.error(`round ${i + 1}/${ROUNDS}`)
}
const median = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1]!
const [loop, compiled] = [median(runs[0]), median(runs[1])]
console.log(`JSON.stringify(toRow(a)), ${EVENTS} events x ${ROUNDS} rounds, median: loop over fields ${loop.toFixed(2)} us/row, compiled ${compiled.toFixed(2)} us/row, compiled/loop ${(compiled / loop).toFixed(2)}`)
