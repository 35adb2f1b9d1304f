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

  describe('a row change seen by change-data capture and the SDK', () => {
    const sdk = (table: string, schema?: string) => act({ source: 'database', action: 'db.update', entity_type: table, ...(schema && { attributes: { 'db.schema': schema } }) })
    const cdc = (table: string, schema = 'public') => act({ source: 'database', action: 'db.update', entity_type: table, attributes: { 'db.schema': schema, 'cdc.slot': 'actline' } })
    const route = (owners: Record<string, string> = {}, captured = ['public.orders', 'billing.*']) =>
      auditPredicate(AuditRouteConfig.parse({ row_change_owner: owners }), captured)

    it('is audited once: from capture by default, the SDK copy kept as context', () => {
      const audit = route()
      expect(audit(cdc('orders'))).toBe(true)
      expect(audit(sdk('orders'))).toBe(false)
      expect(audit(sdk('orders', 'public'))).toBe(false)
      expect(audit(sdk('invoices', 'billing'))).toBe(false)
      expect(audit(cdc('invoices', 'billing'))).toBe(true)
      // Reads and explicit activities are not row changes; all: true does not bring the second copy back.
      expect(audit(act({ source: 'database', action: 'db.select', entity_type: 'orders' }))).toBe(true)
      expect(auditPredicate(AuditRouteConfig.parse({ all: true }), ['public.orders'])(sdk('orders'))).toBe(false)
    })

    it('keeps the SDK copy of a table capture does not surely see: the worst a mismatch does is two rows, never none', () => {
      const audit = route()
      expect(audit(sdk('customers'))).toBe(true)
      expect(audit(sdk('orders', 'archive'))).toBe(true)
      // Unqualified means the default search_path's public, not billing.
      expect(audit(sdk('invoices'))).toBe(true)
      expect(route({}, [])(sdk('orders'))).toBe(true)
    })

    it('follows row_change_owner per table, by schema.table, name or *', () => {
      expect(route({ orders: 'sdk' })(sdk('orders'))).toBe(true)
      expect(route({ orders: 'sdk' })(cdc('orders'))).toBe(false)
      expect(route({ 'billing.invoices': 'sdk' })(cdc('invoices', 'billing'))).toBe(false)
      expect(route({ '*': 'sdk', 'public.orders': 'capture' })(cdc('orders'))).toBe(true)
      expect(route({ '*': 'sdk' })(cdc('invoices', 'billing'))).toBe(false)
      expect(() => AuditRouteConfig.parse({ row_change_owner: { orders: 'trigger' } })).toThrow()
      expect(() => AuditRouteConfig.parse({ row_change_owner: { 'a.b.c': 'sdk' } })).toThrow()
    })
  })
})
