/**
 * Replace a small file so that a crash leaves either the old one or the new
 * one, never a torn mix: write a temporary beside it, fsync, rename over.
 * (The rename itself is not fsynced: a crash may then leave the old file,
 * which every caller treats as "not yet written".)
 */
import { open, rename } from 'node:fs/promises'

export async function replaceFile(path: string, content: string | Buffer): Promise<void> {
  const tmp = `${path}.tmp`
  const fh = await open(tmp, 'w')
  try {
    if (content.length) await fh.writeFile(content)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
}
