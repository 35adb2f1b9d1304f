/**
 * The stages of bench:profile, and the charging of a V8 CPU profile's
 * samples to them: each sample goes to the nearest frame (from the leaf up)
 * that names a stage, so a helper (the row encoder, a JSON builtin) is
 * charged to the stage that called it. JSON.parse and JSON.stringify keep a
 * row of their own per stage, since "parse once" is about them.
 */

export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[]
  samples: number[]
  timeDeltas: number[]
}

/** [test on a frame's url and function name, stage]: the first that matches wins, per frame. */
const RULES: [(url: string, fn: string) => boolean, string][] = [
  [(u, f) => u.includes('/collector/wal/') && /^(read|scan|decodeRecord|scanSegment|recordAt|hasRecordAfter|tail|countFrom)/.test(f), 'write-ahead log: read'],
  [(u) => u.includes('/collector/wal/'), 'write-ahead log: append (encode, write, fsync)'],
  [(u) => u.includes('/collector/pipeline/dedup'), 'dedup'],
  [(u) => u.includes('/collector/pipeline/memory-limiter') || u.includes('/receivers/admission'), 'admission'],
  [(u) => u.includes('/receivers/request-body') || u === 'node:zlib' || u.includes('node:internal/streams'), 'body read + decompression'],
  [(u) => u.includes('/schemas/activity.ts') || u.includes('/node_modules/zod/'), 'validation'],
  [(u) => u.includes('/collector/receivers/'), 'receiver (split, map)'],
  [(u) => u.includes('/node_modules/chdb/'), 'ClickHouse engine (calls on the main thread)'],
  [(u) => u.includes('/exporters/clickhouse/') || u.includes('/@clickhouse/'), 'ClickHouse exporter (encode, client)'],
  [(u) => u.includes('/exporters/postgres/') || u.includes('/node_modules/pg'), 'PostgreSQL exporter (encode, client, worker messages)'],
  [(u) => u.includes('/collector/pipeline/'), 'export pipeline (batching, retry)'],
  [(u) => /\/(fastify|find-my-way|avvio|light-my-request|@fastify)\//.test(u) || /^node:(_http|http|net|internal\/http)/.test(u), 'HTTP (Node and Fastify)'],
  [(u) => u.includes('/collector/server/'), 'server (metrics, logging, health)'],
]

const SPECIAL: Record<string, string | null> = {
  '(garbage collector)': 'garbage collection',
  '(program)': 'V8 and native, unattributed',
  '(idle)': null,
  '(root)': null,
}

/** CPU ms by stage; `all` charges every non-idle sample to one stage (a worker's profile). */
export function chargeProfile(profile: CpuProfile, all?: string): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const memo = new Map<number, string | null>()
  const stageOf = (id: number): string | null => {
    const known = memo.get(id)
    if (known !== undefined) return known
    const leaf = byId.get(id)!.callFrame
    const special = leaf.url === '' ? SPECIAL[leaf.functionName] : undefined
    if (special === null) return memo.set(id, null), null
    let stage: string | undefined = special ?? all
    for (let at: number | undefined = id; stage === undefined && at !== undefined; at = parent.get(at)) {
      const { url, functionName } = byId.get(at)!.callFrame
      stage = RULES.find(([test]) => test(url, functionName))?.[1]
    }
    stage ??= 'other JavaScript'
    if (!all && leaf.url === '' && (leaf.functionName === 'parse' || leaf.functionName === 'stringify')) stage = `${stage}: JSON.${leaf.functionName}`
    memo.set(id, stage)
    return stage
  }
  const out = new Map<string, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const stage = stageOf(profile.samples[i]!)
    if (stage) out.set(stage, (out.get(stage) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000)
  }
  return out
}

/** The `n` frames with the most self time, in ms: `function (file:line)`, idle left out. */
export function topFrames(profile: CpuProfile, n: number): [string, number][] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<string, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const { functionName, url, lineNumber } = byId.get(profile.samples[i]!)!.callFrame as { functionName: string; url: string; lineNumber?: number }
    if (functionName === '(idle)') continue
    const where = url ? ` (${url.replace(/^.*\/(node_modules\/|actline[^/]*\/)?/, '')}:${(lineNumber ?? 0) + 1})` : ''
    const key = `${functionName || '(anonymous)'}${where}`
    self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000)
  }
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, n)
}
