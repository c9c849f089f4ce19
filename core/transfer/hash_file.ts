/**
 * The MD5 of a whole file, read once through the libc binding, the next chunk read while the
 * previous one is hashed.
 * @module
 */

import type { Md5Engine } from "../md5/engine.ts";
import { AT_FDCWD, type Libc } from "../io/libc.ts";
import { FileHandle } from "../io/file_handle.ts";

/** Outcome of {@linkcode hashFile} and {@linkcode hashOpenFile}. */
export interface HashFileResult {
  /** Lowercase hex MD5. */
  md5: string;
  /** Bytes read. */
  sizeBytes: number;
}

/** Hashes the open `file` from its start to its end, `bufferSize` bytes at a time. */
export async function hashOpenFile(
  file: FileHandle,
  engine: Md5Engine,
  bufferSize: number,
): Promise<HashFileResult> {
  const stream = engine.create();
  const buffers = [new Uint8Array(bufferSize), new Uint8Array(bufferSize)];
  let total = 0;
  let hashing: Promise<void> = Promise.resolve();
  try {
    for (let i = 0;; i++) {
      const buf = buffers[i % 2];
      const n = await file.readFull(buf, total);
      await hashing; // the buffer read next was being hashed
      if (n === 0) break;
      total += n;
      hashing = stream.update(buf.subarray(0, n));
      if (n < buf.length) break;
    }
    await hashing;
  } catch (err) {
    await hashing.catch(() => {});
    await stream.digest().catch(() => {});
    throw err;
  }
  return { md5: await stream.digest(), sizeBytes: total };
}

/**
 * Hashes the regular file at `path`, never through a symlink as its last component.
 * @throws {IoError} it cannot be opened or read.
 */
export async function hashFile(
  libc: Libc,
  path: string,
  options: { engine: Md5Engine; bufferSize: number },
): Promise<HashFileResult> {
  const f = libc.flags;
  const flags = f.RDONLY | f.NOFOLLOW | f.NONBLOCK | f.CLOEXEC;
  const file = new FileHandle(libc, await libc.openAt(AT_FDCWD, path, flags, 0), path);
  try {
    return await hashOpenFile(file, options.engine, options.bufferSize);
  } finally {
    file.close();
  }
}
