import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { activityJsonSchema, JSON_SCHEMA_PATH } from '../../schemas/generate-json-schema.ts'
import { ACTIVITY_FIELDS } from '../../schemas/activity.ts'

describe('activity.schema.json', () => {
  it('is current with the zod contract (run npm run schema:generate if not)', () => {
    expect(readFileSync(JSON_SCHEMA_PATH, 'utf8')).toBe(activityJsonSchema())
  })

  it('lists every contract field and requires only action and source', () => {
    const schema = JSON.parse(readFileSync(JSON_SCHEMA_PATH, 'utf8'))
    expect(Object.keys(schema.properties).sort()).toEqual([...ACTIVITY_FIELDS].sort())
    expect(schema.required.sort()).toEqual(['action', 'source'])
  })
})
