/** A PostgreSQL identifier, quoted: for names from config or a catalog, never from a request. */
export const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`

/** `schema.table` or `table` (names from config or a catalog, which hold no dot), each part quoted. */
export const quoteQualified = (name: string) => name.split('.').map(quoteIdent).join('.')

/** A ClickHouse string literal the engine reads back as exactly `text` (a NUL escaped: chDB takes SQL as a C string). */
export const clickhouseString = (text: string) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'").replaceAll('\0', '\\0')}'`

/** A ClickHouse identifier, back-quoted. */
export const clickhouseIdentifier = (name: string) => `\`${name.replaceAll('\\', '\\\\').replaceAll('`', '\\`')}\``
