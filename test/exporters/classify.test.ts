/**
 * Each exporter's classifier over the shared base, on errors shaped as the
 * real clients make them: ClickHouse's text parsed by @clickhouse/client's
 * own parser, PostgreSQL's SQLSTATE as pg's DatabaseError carries it, the
 * file system's from real calls. The stores' real refusals, end to end, are
 * in test/faults/store-refusal.test.ts.
 */
import { mkdir, open } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { parseError } from '@clickhouse/client'
import { classifyError } from '../../exporters/classify.ts'
import { classifyClickHouse } from '../../exporters/clickhouse/classify.ts'
import { classifyFile } from '../../exporters/file/classify.ts'
import { classifyPostgres } from '../../exporters/postgres/classify.ts'

const clickhouseError = (code: number, type: string) => parseError(`Code: ${code}. DB::Exception: something went wrong. (${type}) (version 26.7.1.1)`)

describe('export error classes', () => {
  it('ClickHouse: bad rows are data, an unwell server an outage, any other code unknown', () => {
    expect(classifyError(clickhouseError(27, 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'), classifyClickHouse).status).toBe('permanent')
    expect(classifyError(clickhouseError(469, 'VIOLATED_CONSTRAINT'), classifyClickHouse).status).toBe('permanent')
    expect(classifyError(clickhouseError(252, 'TOO_MANY_PARTS'), classifyClickHouse).status).toBe('retryable')
    expect(classifyError(clickhouseError(60, 'UNKNOWN_TABLE'), classifyClickHouse).status).toBe('retryable')
    expect(classifyError(clickhouseError(48, 'NOT_IMPLEMENTED'), classifyClickHouse).status).toBe('unknown')
  })

  it('PostgreSQL: data and integrity exceptions are data, connection and resources outages, others unknown', () => {
    const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code })
    expect(classifyError(pgError('22P05'), classifyPostgres).status).toBe('permanent')
    expect(classifyError(pgError('23514'), classifyPostgres).status).toBe('permanent')
    expect(classifyError(pgError('53100'), classifyPostgres).status).toBe('retryable')
    expect(classifyError(pgError('57P01'), classifyPostgres).status).toBe('retryable')
    expect(classifyError(pgError('42601'), classifyPostgres).status).toBe('unknown')
    // A store's classifier never reads another's codes: a SQLSTATE means nothing to ClickHouse's.
    expect(classifyError(pgError('22P05'), classifyClickHouse).status).toBe('unknown')
  })

  it('the file system: a directory that is gone or cannot be written is an outage', async () => {
    const failing = async (f: () => Promise<unknown>) => f().then(() => expect.fail('should have failed'), (err: unknown) => err)
    expect(classifyError(await failing(() => open('/nonexistent-actline-dir/file.ndjson', 'w')), classifyFile).status).toBe('retryable')
    expect(classifyError(await failing(() => mkdir('/proc/actline')), classifyFile).status).toBe('retryable')
  })

  it('the shared base: the network is an outage whatever the store, and so is an HTTP 503', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' })
    for (const store of [classifyClickHouse, classifyPostgres, classifyFile]) expect(classifyError(refused, store).status).toBe('retryable')
    expect(classifyError(Object.assign(new Error('unavailable'), { statusCode: 503 })).status).toBe('retryable')
    expect(classifyError(Object.assign(new Error('too large'), { statusCode: 413 })).status).toBe('permanent')
    expect(classifyError(new Error('something nobody foresaw')).status).toBe('unknown')
  })
})
