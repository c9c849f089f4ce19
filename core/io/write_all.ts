/**
 * The write-all loop, once: a write may take fewer bytes than it was given.
 * @module
 */

/** Writes every byte of `bytes` to `file`, calling `write` again after a short write. */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}
