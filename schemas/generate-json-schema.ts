/**
 * Writes schemas/activity.schema.json from the zod contract, for clients in
 * other languages. `npm run schema:generate`; a test fails when it is stale.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { ActivityInput } from './activity.ts'

export const JSON_SCHEMA_PATH = fileURLToPath(new URL('./activity.schema.json', import.meta.url))

export function activityJsonSchema(): string {
  const schema = z.toJSONSchema(ActivityInput, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>
  return (
    JSON.stringify(
      {
        title: 'Activity',
        description: 'One activity event as sent to POST /v1/activities. Unknown top-level fields are kept as string attributes.',
        ...schema,
        // Unknown fields are accepted (moved into attributes), so say so.
        additionalProperties: true,
      },
      null,
      2,
    ) + '\n'
  )
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(JSON_SCHEMA_PATH, activityJsonSchema())
  console.log(`wrote ${JSON_SCHEMA_PATH}`)
}
