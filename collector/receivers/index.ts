/** The receiver registry: the one list of ways in. The config and the server loop over it. */
import { ActivityReceiverConfig } from './activity/config.ts'
import { activityReceiver } from './activity/receiver.ts'
import { OtlpReceiverConfig } from './otlp/config.ts'
import { otlpReceiver } from './otlp/receiver.ts'
import { PostgresCdcReceiverConfig } from './postgres-cdc/config.ts'
import { postgresCdcReceiver } from './postgres-cdc/receiver.ts'
import { defineReceiver } from './receiver-type.ts'

export const RECEIVERS = {
  activity: defineReceiver({ type: 'activity', config: ActivityReceiverConfig, enabled: () => true, plugin: activityReceiver }),
  otlp: defineReceiver({ type: 'otlp', config: OtlpReceiverConfig, enabled: (c) => c.enabled, plugin: otlpReceiver }),
  postgres_cdc: defineReceiver({
    type: 'postgres_cdc',
    config: PostgresCdcReceiverConfig,
    enabled: (c) => c.enabled,
    plugin: postgresCdcReceiver,
    captures: (c) => (c.enabled ? c.tables : []),
    env: { ACTLINE_CDC_URL: { key: 'url', type: 'string' } },
  }),
} as const

/** Every table a receiver of `receivers` records row changes of. */
export function capturedTables(receivers: { [K in keyof typeof RECEIVERS]: unknown }): string[] {
  return Object.entries(RECEIVERS).flatMap(([name, t]) => {
    const type = t as { captures?(c: unknown): readonly string[] }
    return type.captures ? [...type.captures(receivers[name as keyof typeof RECEIVERS])] : []
  })
}

/** `actline cdc`: the postgres_cdc receiver's own tool, for the command line. */
export { cdcCommand } from './postgres-cdc/cli.ts'
