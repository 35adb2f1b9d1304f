import { describe, expect, it } from 'vitest'
import { parseActivity, type Activity } from '../../schemas/activity.ts'
import { AuditRouteConfig, auditPredicate } from '../../collector/pipeline/audit-route.ts'

function act(fields: Record<string, unknown>): Activity {
  const r = parseActivity({ action: 'x.y', source: 'system', ...fields })
  if (!r.ok) throw new Error(JSON.stringify(r.issues))
  return r.activity
}

describe('audit route', () => {
  const audited = auditPredicate(AuditRouteConfig.parse({}))

  it('by default audits user actions, notice and worse, and security-sensitive categories', () => {
    expect(audited(act({ source: 'user' }))).toBe(true)
    // Data changes replace the audit triggers' rows, so they are audited by default.
    expect(audited(act({ source: 'database', severity: 'info' }))).toBe(true)
    expect(audited(act({ severity: 'notice' }))).toBe(true)
    expect(audited(act({ severity: 'critical' }))).toBe(true)
    expect(audited(act({ category: 'authorization' }))).toBe(true)
    expect(audited(act({ category: 'compliance' }))).toBe(true)
  })

  it('by default skips routine system, integration and database info events', () => {
    expect(audited(act({ source: 'system' }))).toBe(false)
    expect(audited(act({ source: 'integration', category: 'api' }))).toBe(false)
    expect(audited(act({ source: 'scheduled', severity: 'info' }))).toBe(false)
  })

  it('matches configured action prefixes, and can audit everything', () => {
    const billing = auditPredicate(AuditRouteConfig.parse({ sources: [], min_severity: 'none', categories: [], action_prefixes: ['billing.'] }))
    expect(billing(act({ action: 'billing.refund', severity: 'critical' }))).toBe(true)
    expect(billing(act({ action: 'user.login', severity: 'critical' }))).toBe(false)
    expect(auditPredicate(AuditRouteConfig.parse({ all: true }))(act({}))).toBe(true)
  })
})
