/**
 * Synthetic activity that looks like a product's: a daily curve (quiet
 * nights, a mid-afternoon peak, UTC) and quieter weekends, ~100 actors of
 * whom a few do most, several tenants and services, database activities as
 * an instrumented app sends them, and a few incidents where one service's
 * failures and latency spike. Deterministic in its seed, so a demo and a
 * test see the same history.
 */
import type { ActivityInputType as ActivityInput } from '../../schemas/activity.ts'

const HOUR = 3_600_000
const DAY = 24 * HOUR

/** [action, source, category, weight, entity type] */
const ACTIONS: readonly [string, string, string, number, string | null][] = [
  ['user.login', 'user', 'authentication', 18, 'user'],
  ['user.logout', 'user', 'authentication', 8, 'user'],
  ['user.password_reset', 'user', 'security', 1, 'user'],
  ['user.update_profile', 'user', 'profile', 3, 'user'],
  ['order.create', 'user', 'data_modification', 9, 'order'],
  ['order.view', 'user', 'data_access', 14, 'order'],
  ['order.cancel', 'user', 'data_modification', 1, 'order'],
  ['cart.add', 'user', 'data_modification', 7, 'cart'],
  ['search.query', 'user', 'search', 10, null],
  ['report.export', 'user', 'data_export', 1, 'report'],
  ['invoice.pay', 'user', 'payment', 3, 'invoice'],
  ['admin.role_grant', 'user', 'admin', 0.3, 'user'],
  ['api.token_create', 'user', 'security', 0.4, 'token'],
  ['db.insert', 'database', 'database', 6, 'orders'],
  ['db.update', 'database', 'database', 5, 'orders'],
  ['db.update', 'database', 'database', 2, 'users'],
  ['db.delete', 'database', 'database', 0.5, 'carts'],
  ['billing.charge', 'system', 'billing', 2, 'invoice'],
  ['email.send', 'system', 'communication', 4, 'user'],
  ['webhook.deliver', 'integration', 'integration', 3, 'webhook'],
  ['sync.crm', 'integration', 'integration', 1, 'account'],
  ['job.cleanup', 'scheduled', 'scheduled_job', 0.5, null],
  ['job.reindex', 'scheduled', 'scheduled_job', 0.3, null],
]

const SERVICE: Record<string, string> = { user: 'web', database: 'api', system: 'billing', integration: 'worker', scheduled: 'worker' }
export const DEMO_TENANTS = ['acme', 'globex', 'initech', 'umbrella', 'hooli'] as const
export const DEMO_SERVICES = ['web', 'api', 'billing', 'worker', 'auth'] as const
const ACTORS = 100

/** A small, fast, seedable generator (mulberry32): the same seed, the same history. */
export function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Relative traffic at an hour of the day (UTC): ~0.15 at 04:00, 1 at 14:00. */
function dailyCurve(hour: number): number {
  return 0.15 + 0.85 * Math.pow(Math.sin((Math.PI * ((hour + 20) % 24)) / 24), 2)
}

export interface Incident {
  from: number
  to: number
  service: string
}

/** Incidents in [from, to): one every ~3 weeks, 1-5 hours, one service each. */
export function incidents(from: number, to: number, seed: number): Incident[] {
  const rnd = random(seed ^ 0x9e3779b9)
  const out: Incident[] = []
  for (let t = from + 5 * DAY * rnd(); t < to; t += (14 + 14 * rnd()) * DAY) {
    const start = Math.floor(t / HOUR) * HOUR + 9 * HOUR
    if (start >= to) break
    out.push({ from: start, to: start + (1 + Math.floor(4 * rnd())) * HOUR, service: DEMO_SERVICES[Math.floor(rnd() * DEMO_SERVICES.length)]! })
  }
  return out
}

export interface TrafficOptions {
  /** Activities on an average weekday. */
  perDay: number
  seed: number
  incidents?: Incident[]
}

const totalWeight = ACTIONS.reduce((s, a) => s + a[3], 0)

/** How many activities the hour starting at `hourStart` holds. */
export function hourVolume(hourStart: number, o: TrafficOptions, rnd: () => number): number {
  const d = new Date(hourStart)
  const weekend = d.getUTCDay() === 0 || d.getUTCDay() === 6 ? 0.45 : 1
  // The curve averages ~0.57 over a day, so scale an hour to perDay / 24 on average.
  const expected = (o.perDay / 24 / 0.575) * dailyCurve(d.getUTCHours()) * weekend
  return Math.max(0, Math.round(expected * (0.85 + 0.3 * rnd())))
}

/** One activity at `ts`. */
export function activityAt(ts: number, o: TrafficOptions, rnd: () => number): ActivityInput {
  let pick = rnd() * totalWeight
  let spec = ACTIONS[0]!
  for (const a of ACTIONS) if ((pick -= a[3]) <= 0) { spec = a; break }
  const [action, source, category, , entityType] = spec
  const service = action.startsWith('user.log') || action === 'user.password_reset' ? 'auth' : SERVICE[source]!
  const incident = o.incidents?.find((i) => ts >= i.from && ts < i.to && i.service === service)
  const failed = rnd() < (incident ? 0.35 : action === 'user.login' ? 0.05 : 0.015)
  // A few actors do most: actor k is picked with weight ~1/k.
  const actor = `u${Math.min(ACTORS, Math.floor(Math.exp(rnd() * Math.log(ACTORS + 1))))}`
  const tenant = rnd() < 0.04 ? undefined : DEMO_TENANTS[Math.floor(Math.pow(rnd(), 1.6) * DEMO_TENANTS.length)]
  const entityId = entityType ? String(1 + Math.floor(rnd() * 5000)) : undefined
  const duration = Math.round(Math.exp(3 + rnd() * 2.2) * (incident ? 6 : 1) * 10) / 10
  const security = category === 'security' || category === 'admin'
  return {
    timestamp: ts,
    source: source as ActivityInput['source'],
    action,
    category: category as ActivityInput['category'],
    severity: failed ? (incident ? 'critical' : 'warning') : security ? 'notice' : 'info',
    status: failed ? 'failure' : 'success',
    ...(source !== 'scheduled' && source !== 'integration' && { actor_id: actor }),
    ...(tenant && { tenant_id: tenant }),
    service,
    ...(entityType && { entity_type: entityType, entity_id: entityId }),
    duration_ms: duration,
    ...((source === 'database' || failed) && {
      details: {
        ...(source === 'database' && { table: entityType, operation: action.slice(3), rows: 1 }),
        ...(failed && { error: incident ? 'upstream timeout' : 'validation failed' }),
      },
    }),
  } as ActivityInput
}

/** Every activity of [from, to), hour by hour, oldest first. */
export function* history(from: number, to: number, o: TrafficOptions): Generator<ActivityInput> {
  const rnd = random(o.seed)
  for (let h = Math.floor(from / HOUR) * HOUR; h < to; h += HOUR) {
    const n = hourVolume(h, o, rnd)
    const times = Array.from({ length: n }, () => h + Math.floor(rnd() * HOUR)).filter((t) => t >= from && t < to).sort((a, b) => a - b)
    for (const t of times) yield activityAt(t, o, rnd)
  }
}
