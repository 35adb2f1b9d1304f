/** The package version, for the OpenAPI document. Found by the package's own name (self-reference), from source or dist alike. */
import { createRequire } from 'node:module'

export const VERSION: string = (createRequire(import.meta.url)('actline/package.json') as { version: string }).version
