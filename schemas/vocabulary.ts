/**
 * The closed lists of the event contract, with no imports: the schema
 * (activity.ts) and the browser monitor (dashboards/web) share them, and the
 * monitor's bundle must not carry zod for four lists.
 */
export const SOURCES = ['user', 'system', 'integration', 'database', 'scheduled'] as const

/** Ordered from least to most severe; routing rules compare by index. */
export const SEVERITIES = ['info', 'notice', 'warning', 'critical'] as const

export const STATUSES = ['success', 'failure', 'pending', 'canceled'] as const

/**
 * The documented category list (docs/event-contract.md explains each).
 * Closed on purpose: dashboards group by it, so a typo must be an error,
 * not a new series. Anything that fits none is `other`.
 */
export const CATEGORIES = [
  'authentication',
  'authorization',
  'security',
  'compliance',
  'user_management',
  'account',
  'profile',
  'admin',
  'configuration',
  'data_access',
  'data_modification',
  'data_export',
  'data_import',
  'database',
  'api',
  'integration',
  'notification',
  'communication',
  'billing',
  'payment',
  'subscription',
  'content',
  'file',
  'search',
  'workflow',
  'scheduled_job',
  'system',
  'performance',
  'error',
  'other',
] as const
