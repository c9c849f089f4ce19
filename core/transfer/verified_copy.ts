/**
 * The per-file pipeline: one pass over the source that hashes it, writes the copy, and reads
 * every range of the copy back from storage as soon as it is there, comparing it with the
 * source bytes still in memory, while later ranges are still being read and written.
 *
 * Each range holds a {@linkcode BufferPair} of the rank's {@linkcode BufferBudget} from its read
 * to its comparison. Read-back comes from storage, never from this writer's page cache: with
 * `O_DIRECT` on the copy (ext4, xfs, Lustre, GPFS, NFS, tmpfs) the writes and the read-back go
 * straight between the buffers and storage; where the file system refuses `O_DIRECT` the range
 * is written to storage with `sync_file_range`, its pages are dropped with `posix_fadvise`, and
 * it is read again (see the README).
 * @module
 */

import type { Md5Engine, Md5Stream } from "../md5/engine.ts";
import { alignUp } from "../io/aligned_buffer.ts";
import type { FileHandle } from "../io/file_handle.ts";
import type { Libc } from "../io/libc.ts";
import type { BufferBudget, BufferPair } from "./buffer_budget.ts";

/** A byte range of a file. */
export interface ByteRange {
  /** First byte. */
  offset: number;
  /** Bytes. */
  length: number;
}

/** Options of {@linkcode copyVerified}. */
export interface VerifiedCopyOptions {
  /** The libc binding (byte comparison). */
  libc: Libc;
  /** MD5 engine. */
  engine: Md5Engine;
  /** The rank's buffers. */
  budget: BufferBudget;
  /** Ranges of this file in flight at most (default: as many as the budget gives). */
  rangesInFlight?: number;
  /**
   * Runs once a range of the copy is on storage, before it is read back (tests change the
   * copy on storage there, by construction between write and read-back).
   */
  beforeReadBack?: (range: ByteRange) => Promise<void> | void;
}

/** Outcome of {@linkcode copyVerified}. */
export interface VerifiedCopyResult {
  /** Bytes copied: the source's size at open. */
  sizeBytes: number;
  /** MD5 of the source as read ("" when the copy was abandoned on a mismatch). */
  md5Src: string;
  /**
   * MD5 of the copy as read back from storage: equal to `md5Src` when every byte read back
   * equals the source byte; `null` when they differ (nothing is published then).
   */
  md5Dst: string | null;
  /** True when every byte read back equals the source and the copy is synced. */
  ok: boolean;
  /** Why `ok` is false. */
  mismatch?: string;
  /** Bytes read from the source and read back from the copy. */
  bytesRead: { source: number; destination: number };
}

function hex2(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

function firstDifference(a: Uint8Array, b: Uint8Array, n: number): number {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Ends a stream a failure left open, so that its engine frees what it holds. */
async function release(stream: Md5Stream): Promise<void> {
  await Promise.resolve().then(() => stream.digest()).catch(() => {});
}

/**
 * Copies the open `src` into the new, empty `tmp`, verified as described in the module
 * documentation, then `fdatasync`s it. `src` and `tmp` may have `O_DIRECT` on (the buffers are
 * aligned; the last range of a direct copy is written padded to the alignment, then the copy
 * is truncated to its size). A difference gives `ok: false` with the first differing offset
 * found; a source whose size or modification time changed gives `ok: false` too. A failed
 * system call throws its `IoError` once every range in flight has settled; the caller removes
 * `tmp` in both cases.
 */
export async function copyVerified(
  src: FileHandle,
  tmp: FileHandle,
  options: VerifiedCopyOptions,
): Promise<VerifiedCopyResult> {
  const { libc, budget } = options;
  const before = src.stat();
  const size = before.size;
  const chunk = budget.bufferSize;
  const count = Math.ceil(size / chunk);
  const limit = Math.max(1, options.rangesInFlight ?? Infinity);
  const stream = options.engine.create();
  const bytesRead = { source: 0, destination: 0 };
  let failure: { error: unknown } | undefined;
  /** The lowest differing offset found, and what differs there. */
  let difference: { at: number; text: string } | undefined;
  const differs = (at: number, text: string) => {
    if (difference === undefined || at < difference.at) difference = { at, text };
  };
  let hashTail: Promise<void> = Promise.resolve();
  const inFlight = new Set<Promise<void>>();

  const verifyRange = async (pair: BufferPair, offset: number, length: number) => {
    const padded = tmp.direct ? alignUp(length) : length;
    pair.source.fill(0, length, padded);
    await tmp.writeAll(pair.source.subarray(0, padded), offset);
    if (padded !== length) await tmp.truncate(size);
    if (!tmp.direct) await tmp.syncRange(offset, length);
    await options.beforeReadBack?.({ offset, length });
    if (!tmp.direct) await tmp.dropCache(offset, length);
    const got = await tmp.readFull(pair.back.subarray(0, padded), offset);
    bytesRead.destination += Math.min(got, length);
    if (got < length) {
      differs(
        offset + got,
        `the copy on storage ends at offset ${offset + got}, ${size} bytes were written`,
      );
    } else if (!libc.equalBytes(pair.source, pair.back, length)) {
      const i = firstDifference(pair.source, pair.back, length);
      differs(
        offset + i,
        `bytes differ at offset ${offset + i} (source ${hex2(pair.source[i])}, copy on ` +
          `storage ${hex2(pair.back[i])})`,
      );
    }
  };

  let shrank = -1;
  for (let k = 0; k < count && failure === undefined && difference === undefined; k++) {
    while (inFlight.size >= limit) await Promise.race(inFlight);
    const pair = await budget.acquire();
    if (failure !== undefined || difference !== undefined) {
      budget.release(pair);
      break;
    }
    const offset = k * chunk;
    const length = Math.min(chunk, size - offset);
    let n: number;
    try {
      n = await src.readFull(
        pair.source.subarray(0, src.direct ? alignUp(length) : length),
        offset,
      );
    } catch (error) {
      budget.release(pair);
      failure = { error };
      break;
    }
    bytesRead.source += Math.min(n, length);
    if (n < length) {
      budget.release(pair);
      shrank = offset + n;
      break;
    }
    const data = pair.source.subarray(0, length);
    const hashed = hashTail = hashTail.then(() => stream.update(data));
    const done: Promise<void> = Promise.all([hashed, verifyRange(pair, offset, length)]).then(
      () => {},
      (error) => {
        failure ??= { error };
      },
    ).finally(() => {
      budget.release(pair);
      inFlight.delete(done);
    });
    inFlight.add(done);
  }
  await Promise.all(inFlight);
  await hashTail.catch(() => {});

  const result: VerifiedCopyResult = {
    sizeBytes: size,
    md5Src: "",
    md5Dst: null,
    ok: false,
    bytesRead,
  };
  if (failure !== undefined) {
    await release(stream);
    throw failure.error;
  }
  const after = src.stat();
  if (shrank >= 0 || after.size !== size || after.mtimeMs !== before.mtimeMs) {
    await release(stream);
    result.mismatch = `source changed during the copy (size ${size} at open, ` +
      `${shrank >= 0 ? shrank : size} read, ${after.size} at end); is it still being downloaded?`;
    return result;
  }
  if (difference !== undefined) {
    await release(stream);
    result.mismatch = difference.text;
    return result;
  }
  result.md5Src = await stream.digest();
  await tmp.syncData();
  const stored = tmp.stat().size;
  if (stored !== size) {
    result.mismatch = `the copy on storage has ${stored} bytes, ${size} were written`;
    return result;
  }
  result.md5Dst = result.md5Src;
  result.ok = true;
  return result;
}
