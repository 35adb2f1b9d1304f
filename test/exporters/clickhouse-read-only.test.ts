/**
 * The formats the read-only endpoint streams block by block must be ones
 * whose blocks' outputs, end to end, are the whole result: checked here
 * against the embedded engine itself, so an engine upgrade that changes a
 * format's framing fails this test rather than a client's parser.
 */
import { Session } from 'chdb'
import { afterAll, describe, expect, it } from 'vitest'
import { STREAMABLE_FORMATS } from '../../exporters/clickhouse/read-only.ts'

describe('formats streamed by the read-only endpoint', () => {
  const session = new Session()
  afterAll(() => session.close())
  // Several blocks of mixed types: numbers, strings with separators to escape, floats, arrays, nulls.
  const sql = "SELECT number AS n, concat('a,\"b\"\\t', toString(number)) AS s, number / 3 AS f, [number, 1] AS a, if(number % 7 = 0, NULL, number) AS maybe FROM numbers(20000) SETTINGS max_block_size = 4096"

  it.each([...STREAMABLE_FORMATS])('%s: the streamed blocks, joined, are the one-shot result', async (format) => {
    const whole = Buffer.from((await session.queryAsync(sql, { format })).bytes())
    const chunks: Buffer[] = []
    for await (const chunk of session.queryStream(sql, { format })) chunks.push(Buffer.from(chunk.raw()))
    expect(chunks.length, 'more than one block, or the check proves nothing').toBeGreaterThan(1)
    expect(Buffer.concat(chunks).equals(whole)).toBe(true)
  })

  it('leaves out the formats with a header, a footer or a separator between rows', () => {
    for (const format of ['JSON', 'JSONCompact', 'CSVWithNames', 'TSVWithNamesAndTypes', 'Parquet', 'Arrow', 'Values', 'XML', 'Pretty', 'RowBinaryWithNamesAndTypes']) {
      expect(STREAMABLE_FORMATS.has(format.toLowerCase()), format).toBe(false)
    }
  })
})
