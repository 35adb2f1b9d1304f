/**
 * Initializes a fresh PGlite data directory (initdb), in a process of its
 * own: initdb's WASM module stays resident (~500 MB) in the process that ran
 * it, even after its thread exits, and the collector should not carry that.
 *   node pglite-init.js DATA_DIR SHARED_BUFFERS
 */
import { PGlite } from '@electric-sql/pglite'

const [dataDir, sharedBuffers] = process.argv.slice(2)
const db = await PGlite.create(dataDir!, { postgresqlconf: `shared_buffers = '${sharedBuffers}'` })
await db.close()
