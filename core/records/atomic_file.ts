/**
 * Whole-file writes that never leave a half-written file: temporary, fsync, rename, fsync of
 * the folder.
 * @module
 */

import { basename, dirname, join } from "node:path";
import { syncDirectory } from "../io/sync_directory.ts";
import { writeAll } from "../io/write_all.ts";

/**
 * Writes `data` to `path` atomically: readers see the old file or the whole new one, and
 * after return the new content survives a crash. `data` may be given as text chunks, which
 * are written one by one (a large table never needs one string of all of it).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array | Iterable<string>,
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  const chunks: Iterable<string | Uint8Array> =
    typeof data === "string" || data instanceof Uint8Array ? [data] : data;
  const encoder = new TextEncoder();
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      for (const chunk of chunks) {
        const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
        await writeAll(file, bytes);
      }
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDirectory(dir);
}
