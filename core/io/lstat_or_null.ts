/**
 * File-system look-ups that treat "not there" as an answer, not an error.
 * @module
 */

/** `lstat` of `path` (symlinks not followed), or null when nothing is there. */
export async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}
