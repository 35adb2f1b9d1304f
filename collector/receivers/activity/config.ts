/** `receivers.activity`: docs/configuration.md documents each key. */
import { z } from 'zod'

export const ActivityReceiverConfig = z
  .object({
    /** Largest body accepted, after decompression (a small gzip can expand 1000x). @default 16777216 */
    max_body_bytes: z.number().int().min(1024).default(16 * 1024 * 1024),
    /** Most items in one request. @default 50000 */
    max_items: z.number().int().min(1).default(50_000),
    /** Most per-item errors listed in one reply; the counts are always exact. @default 100 */
    max_reported_errors: z.number().int().min(1).default(100),
  })
  .strict()

export type ActivityReceiverConfig = z.output<typeof ActivityReceiverConfig>
