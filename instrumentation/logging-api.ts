/**
 * The logging API, with the names apps leaving the legacy activity service
 * already call. Every function returns at once: it builds the activity and
 * queues it on the client; nothing here waits on the network or throws into
 * the app (a wrapped function's own error is rethrown untouched).
 *
 * Each activity carries the active trace and span ids when an OpenTelemetry
 * SDK is recording, and the actor, tenant and correlation id of the current
 * activity context (withActivityContext). Each with* activity records the
 * current correlation id: the outer one, else the trace id; else its own id
 * is what everything logged inside it correlates to.
 * withActivity and withBatchLogging, which wrap whole operations, also make
 * it current for what runs inside them, so everything one operation logs can
 * be found together; the leaf wrappers (one statement, one call) do not, as
 * entering a context would cost more than the rest of the wrapper.
 */
import type { ActivityInputType, Category, Severity, Source, Status } from '../schemas/activity-input.ts'
import { uuidv7 } from '../schemas/uuidv7.ts'
import { DEFAULT_REDACT, redactor } from '../schemas/redaction.ts'
import { boundedRow, changeDetails } from '../schemas/row-change.ts'
import { ActivityClient, type ActivityClientOptions } from './activity-client.ts'
import { activeTraceIds, currentActivityContext, withActivityContext } from './activity-context.ts'

export interface ActivityOptions {
  actorId?: string
  tenantId?: string
  entityType?: string
  entityId?: string | number
  category?: Category
  severity?: Severity
  status?: Status
  details?: string | Record<string, unknown>
  attributes?: Record<string, string | number | boolean>
  correlationId?: string
  durationMs?: number
  ip?: string
  userAgent?: string
}

let client: ActivityClient | undefined
let service: string | undefined = process.env['OTEL_SERVICE_NAME']

/**
 * Sets the client every function here ships through. Without a call, the
 * first activity creates one from the environment (ACTLINE_ENDPOINT,
 * ACTLINE_API_KEY). Returns the client, for forceFlush() and shutdown().
 */
export function configureActivityLogging(options: (ActivityClientOptions & { service?: string }) | ActivityClient = {}): ActivityClient {
  const previous = client
  if (options instanceof ActivityClient) client = options
  else {
    const { service: name, ...clientOptions } = options
    if (name !== undefined) service = name
    client = new ActivityClient({ ...clientOptionsFromEnv(), ...clientOptions })
  }
  if (previous && previous !== client) void previous.shutdown()
  return client
}

/** The service name activities carry: configureActivityLogging's, else OTEL_SERVICE_NAME. */
export function serviceName(): string | undefined {
  return service
}

export function getActivityClient(): ActivityClient {
  return (client ??= new ActivityClient(clientOptionsFromEnv()))
}

export function clientOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ActivityClientOptions {
  return {
    ...(env['ACTLINE_ENDPOINT'] && { endpoint: env['ACTLINE_ENDPOINT'] }),
    ...(env['ACTLINE_API_KEY'] && { apiKey: env['ACTLINE_API_KEY'] }),
    ...(env['ACTLINE_GZIP'] === 'false' && { gzip: false }),
  }
}

/** Queues an activity given in the contract's own shape; returns its id. */
export function logActivity(activity: ActivityInputType): string {
  return safely(() => getActivityClient().log(enrich({ ...activity })))
}

export function logUserAction(action: string, options?: ActivityOptions): string {
  return safely(() => getActivityClient().log(build('user', action, options)))
}

export function logSystemEvent(action: string, options?: ActivityOptions): string {
  return safely(() => getActivityClient().log(build('system', action, options)))
}

export function logIntegrationEvent(action: string, options?: ActivityOptions & { integration?: string }): string {
  const { integration, ...rest } = options ?? {}
  const activity = build('integration', action, { category: 'integration', ...rest })
  if (integration) activity.attributes = { ...activity.attributes, 'integration.name': integration }
  return safely(() => getActivityClient().log(activity))
}

/** Runs fn and records it as one activity: its duration, and failure with the error's message if it throws. */
export function withActivity<T>(action: string, fn: () => T, options: ActivityOptions & { source?: Source } = {}): T {
  const { source, ...rest } = options
  return timed(source ?? (rest.actorId || currentActivityContext()?.actorId ? 'user' : 'system'), action, rest, fn, { scope: true })
}

/** What withDatabaseLogging may be told beyond the row's id: who, and the row's values before and after. */
export interface DatabaseLoggingOptions {
  actorId?: string
  old?: Record<string, unknown>
  new?: Record<string, unknown>
  /** Column names containing one of these words are recorded as "[redacted]". @default password, secret, token, key, ssn, card */
  redact?: readonly string[]
}

/**
 * A database write (or read) done by the app: the activity an audit trigger
 * used to record. Given the row's values, it records them as CDC does
 * (`details.old`, `details.new`, `details.changed`), sensitive columns
 * redacted before they leave the app.
 */
export function withDatabaseLogging<T>(
  operation: string,
  table: string,
  entityId: string | number | undefined,
  fn: () => T,
  actorOrOptions?: string | DatabaseLoggingOptions,
): T {
  const op = operation.toLowerCase()
  const modifies = op === 'insert' || op === 'update' || op === 'delete' || op === 'upsert'
  const given = typeof actorOrOptions === 'string' ? { actorId: actorOrOptions } : actorOrOptions
  // Built field by field: this runs for every write an app makes.
  const options: ActivityOptions = { category: modifies ? 'data_modification' : 'data_access', entityType: table }
  if (entityId !== undefined) options.entityId = entityId
  if (given?.actorId !== undefined) options.actorId = given.actorId
  if (given?.old || given?.new) {
    const details = changeDetails({ ...(given.old && { old: boundedRow(given.old) }), ...(given.new && { new: boundedRow(given.new) }) }, redactor(given.redact ?? DEFAULT_REDACT))
    if (details) options.details = details
  }
  return timed('database', `db.${slug(op)}`, options, fn, { scope: false })
}

/** An outbound API call. A Response-like result's status decides success (< 400) or failure. */
export function withApiLogging<T>(url: string, method: string, fn: () => T): T {
  return timed('integration', `api.${slug(method.toLowerCase())}`, {
    category: 'api',
    attributes: { 'http.request.method': method.toUpperCase(), 'url.full': safeUrl(url) },
  }, fn, {
    scope: false,
    onResult(result, activity) {
      const status = (result as { status?: unknown } | undefined)?.status
      if (typeof status !== 'number') return
      activity.attributes = { ...activity.attributes, 'http.response.status_code': status }
      if (status >= 400) {
        activity.status = 'failure'
        activity.severity = status >= 500 ? 'warning' : 'notice'
      }
    },
  })
}

/** A batch job over `count` items. */
export function withBatchLogging<T>(name: string, count: number, fn: () => T): T {
  return timed('system', `batch.${slug(name)}`, {
    category: 'workflow',
    entityType: 'batch',
    entityId: name,
    attributes: { 'batch.name': name, 'batch.size': count },
  }, fn, { scope: true })
}

function timed<T>(
  source: Source,
  action: string,
  options: ActivityOptions,
  fn: () => T,
  { scope, onResult }: { scope: boolean; onResult?: (result: T, activity: ActivityInputType) => void },
): T {
  const id = uuidv7()
  const outer = currentActivityContext()
  // With nothing outside to correlate with, this activity's own id is what
  // everything logged inside it points to.
  const correlationId = options.correlationId ?? outer?.correlationId ?? activeTraceIds()?.traceId ?? id
  const started = performance.now()
  const record = (error: unknown, result?: T) =>
    safely(() => {
      const activity = build(source, action, options, id)
      // Its own id as correlation says nothing the id does not (enrich finds it in the context it opened).
      if (correlationId !== id) activity.correlation_id = correlationId
      else if (activity.correlation_id === id) delete activity.correlation_id
      activity.duration_ms = Math.round((performance.now() - started) * 1000) / 1000
      if (error !== undefined) {
        const e = error instanceof Error ? error : new Error(String(error))
        activity.status = 'failure'
        activity.severity = options.severity ?? 'warning'
        activity.details = { ...(typeof options.details === 'object' && options.details), error: e.message, error_type: e.name }
      } else if (onResult) onResult(result as T, activity)
      return getActivityClient().log(activity)
    })
  const run = () => {
    let result: T
    try {
      result = fn()
    } catch (err) {
      record(err ?? 'undefined error')
      throw err
    }
    if (isPromiseLike(result)) {
      return result.then(
        (value) => (record(undefined, value as T), value),
        (err: unknown) => {
          record(err ?? 'undefined error')
          throw err
        },
      ) as T
    }
    record(undefined, result)
    return result
  }
  // A leaf (one statement, one call) has nothing inside to correlate, and
  // entering a context costs more than the rest of the wrapper.
  return !scope || outer?.correlationId === correlationId ? run() : withActivityContext({ correlationId }, run)
}

function build(source: Source, action: string, o: ActivityOptions = {}, id = uuidv7()): ActivityInputType {
  // id first and always: every activity then shares one object shape.
  const a: ActivityInputType = { id, source, action }
  if (o.category) a.category = o.category
  if (o.severity) a.severity = o.severity
  if (o.status) a.status = o.status
  if (o.entityType) a.entity_type = o.entityType
  if (o.entityId !== undefined) a.entity_id = String(o.entityId)
  if (o.actorId) a.actor_id = o.actorId
  if (o.tenantId) a.tenant_id = o.tenantId
  if (o.correlationId) a.correlation_id = o.correlationId
  if (o.durationMs !== undefined) a.duration_ms = Math.round(o.durationMs * 1000) / 1000
  if (o.details !== undefined) a.details = o.details
  if (o.attributes) a.attributes = o.attributes
  if (o.ip) a.ip = o.ip
  if (o.userAgent) a.user_agent = o.userAgent
  return enrich(a)
}

/** Fills what the caller left out from the trace, the activity context and the service name. */
function enrich(a: ActivityInputType): ActivityInputType {
  const ids = activeTraceIds()
  if (ids && !a.trace_id) {
    a.trace_id = ids.traceId
    a.span_id ??= ids.spanId
  }
  const ctx = currentActivityContext()
  if (ctx) {
    if (ctx.actorId) a.actor_id ??= ctx.actorId
    if (ctx.tenantId) a.tenant_id ??= ctx.tenantId
    if (ctx.correlationId) a.correlation_id ??= ctx.correlationId
  }
  if (service) a.service ??= service
  return a
}

/** The logging API must not throw into the app: a bug here costs an activity, never a request. */
function safely(fn: () => string): string {
  try {
    return fn()
  } catch (err) {
    process.emitWarning(`actline: could not log an activity: ${(err as Error).message}`, 'ActlineActivityClient')
    return ''
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function'
}

/** Action words are [A-Za-z0-9_:-/]; anything else becomes '_'. */
function slug(word: string): string {
  return word.replace(/[^A-Za-z0-9_:\-/]+/g, '_').replace(/^_+|_+$/g, '') || 'unnamed'
}

/** Query strings and credentials often hold tokens: an activity keeps neither. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    u.search = ''
    u.hash = ''
    return u.toString()
  } catch {
    return url.split('?')[0]!
  }
}
