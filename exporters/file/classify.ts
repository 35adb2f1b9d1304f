/**
 * The file system's errors, for the shared classifier (../classify.ts): a
 * full or failing disk, or one we may not write, is an outage (the rows are
 * fine; retried until it is fixed, and ingest pushes back meanwhile).
 */
import type { StoreClassifier } from '../classify.ts'

const OUTAGE = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE', 'ENOENT', 'EBUSY', 'EAGAIN'])

export const classifyFile: StoreClassifier = (_error, code) => (code && OUTAGE.has(code) ? 'outage' : undefined)
