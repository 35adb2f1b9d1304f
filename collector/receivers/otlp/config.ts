/** `receivers.otlp`: docs/configuration.md documents each key. */
import { z } from 'zod'

export const OtlpReceiverConfig = z
  .object({
    /** Serve POST /v1/traces. @default true */
    enabled: z.boolean().default(true),
    /** Largest body accepted, after decompression. @default 16777216 */
    max_body_bytes: z.number().int().min(1024).default(16 * 1024 * 1024),
    /**
     * Count spans that map to no activity (a SELECT, an internal span) in
     * partial_success.rejected_spans. On by default so a sender sees that
     * those spans were not kept; turn off to stop SDKs that export every span
     * from logging a partial success on each batch. @default true
     */
    report_unmapped: z.boolean().default(true),
  })
  .strict()

export type OtlpReceiverConfig = z.output<typeof OtlpReceiverConfig>
