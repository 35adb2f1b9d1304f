/** A PostgreSQL identifier, quoted: for names from config or a catalog, never from a request. */
export const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`
