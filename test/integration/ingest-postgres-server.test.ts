import { describe } from 'vitest'
import { PG_URL } from '../helpers/stores.ts'
import { ingestSuite } from './ingest-suite.ts'

// The embedded suite always runs; this one adds the real server when CI (or
// you) point PG_URL at one.
describe.runIf(PG_URL)('real PostgreSQL server', () => ingestSuite('server'))
