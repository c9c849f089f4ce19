/**
 * The per-file pipeline: one pass over the source that hashes it, writes the copy, and reads
 * every range of the copy back from storage as soon as it is there, comparing it with the
 * source bytes still in memory, while later ranges are still being read and written.
 *
 * Each range holds a {@linkcode BufferPair} of the rank's {@linkcode BufferBudget} from its read
 * to its comparison. A range is written, then written to storage and waited for
 * (`sync_file_range`), then its pages are dropped from the page cache (`posix_fadvise`), then it
 * is read back through a second descriptor of the copy opened with `O_DIRECT`, which bypasses
 * every cache of this node (the page cache, GPFS's pagepool). Where the file system refuses
 * `O_DIRECT` the read-back goes through the writer's descriptor, after the sync and the drop
 * (see the README).
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

/** The copy being written: the same new file open twice. */
export interface CopyTarget {
  /** Opened for writing; writes go through the page cache. */
  writer: FileHandle;
  /** Opened for the read-back, with `O_DIRECT` where the file system has it; or `writer`. */
  reader: FileHandle;
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
  /**
   * Sees the source bytes of each range as soon as they are read, in file order, with the
   * file's size; `bytes` is lent for the call only (copy what is to be kept).
   */
  onSourceRange?: (range: ByteRange, bytes: Uint8Array, size: number) => void;
  /** Told the bytes of each range once they are written (for progress: bytes in flight). */
  onWritten?: (bytes: number) => void;
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
 * Copies the open `src` into the new, empty copy `target`, verified as described in the module
 * documentation, then `fdatasync`s it. `src` may have `O_DIRECT` on (the buffers are aligned).
 * A difference gives `ok: false` with the first differing offset found; a source whose size or
 * modification time changed gives `ok: false` too. A failed system call throws its `IoError`
 * once every range in flight has settled; the caller removes the copy in both cases.
 */
export async function copyVerified(
  src: FileHandle,
  target: CopyTarget,
  options: VerifiedCopyOptions,
): Promise<VerifiedCopyResult> {
  const { libc, budget } = options;
  const { writer, reader } = target;
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
    await writer.writeAll(pair.source.subarray(0, length), offset);
    options.onWritten?.(length);
    await writer.syncRange(offset, length);
    await options.beforeReadBack?.({ offset, length });
    await writer.dropCache(offset, length);
    const want = reader.direct ? alignUp(length) : length;
    const got = await reader.readFull(pair.back.subarray(0, want), offset);
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
    options.onSourceRange?.({ offset, length }, data, size);
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
  await writer.syncData();
  const stored = writer.stat().size;
  if (stored !== size) {
    result.mismatch = `the copy on storage has ${stored} bytes, ${size} were written`;
    return result;
  }
  result.md5Dst = result.md5Src;
  result.ok = true;
  return result;
}
