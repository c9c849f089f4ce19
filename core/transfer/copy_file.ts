/**
 * Copies one file to a temporary destination while hashing it with MD5, makes the copy durable
 * and verifies it. The source is read once for the copy; reading, hashing and writing overlap
 * through a small pool of buffers, so memory stays bounded whatever the file size.
 * @module
 */

import { errorMessage, UserError } from "../errors.ts";
import { writeAll } from "../io/write_all.ts";
import { ExitCode } from "../exit_codes.ts";
import type { Md5Engine, Md5Stream } from "../md5/engine.ts";
import type { VerifyMode } from "../config.ts";

/** The step of a transfer during which a file-system call failed. */
export type TransferOp =
  | "open-source"
  | "read-source"
  | "create-tmp"
  | "write-tmp"
  | "sync-tmp"
  | "open-tmp"
  | "read-tmp"
  | "open-file"
  | "read-file";

/** Default size of each buffer of the pool: 8 MiB. */
export const DEFAULT_BUFFER_SIZE: number = 8 * 1024 * 1024;

/** Default number of buffers in the pool (one being read, others hashed and written). */
export const DEFAULT_BUFFER_COUNT = 4;

const HINTS: Record<string, string> = {
  ENOENT: "the path does not exist; check the downloader tree and the dataset folder",
  EEXIST: "the temporary already exists (left by an interrupted run, or another copy is " +
    "running); make sure no other copy runs, then remove it",
  EACCES: "permission denied; check owner and mode of the file and its folders",
  EPERM: "operation not permitted; check owner, mode and ACLs of the file and its folders",
  EROFS: "the file system is mounted read-only; choose a writable destination",
  ENOSPC: "no space left on the destination; free space or choose another file system",
  EDQUOT: "disk quota exceeded on the destination; free space or ask for a larger quota",
  ENOTDIR: "a component of the path is not a directory; check the destination layout",
  EISDIR: "the path is a directory, not a file",
  EFBIG: "file too large for the destination or above the process limit (ulimit -f)",
  ESTALE: "stale file handle (the file was replaced on the server); retry the transfer",
  EIO: "the storage reported an I/O error; retry, and report it to the admins if it persists",
};

/**
 * A file-system call failed during a transfer; any temporary the call created is removed.
 * Exit code {@linkcode ExitCode.Failures}: the item failed, the user can act on the message.
 */
export class TransferIoError extends UserError {
  /** Path the failed call was about. */
  readonly path: string;
  /** Step of the transfer that failed. */
  readonly op: TransferOp;
  /** System error code such as `ENOENT`, or `EUNKNOWN`. */
  readonly code: string;
  /** The system's own message. */
  readonly systemMessage: string;
  /** Creates the error; `cause` is the original error. */
  constructor(op: TransferOp, path: string, code: string, systemMessage: string, cause?: unknown) {
    const hint = HINTS[code];
    super(
      `${op} failed for ${path}: ${code}: ${systemMessage}${hint ? ` (${hint})` : ""}`,
      ExitCode.Failures,
    );
    this.cause = cause;
    this.path = path;
    this.op = op;
    this.code = code;
    this.systemMessage = systemMessage;
  }
}

/** Linux errno names for errors Deno reports without a `code`. */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  5: "EIO",
  12: "ENOMEM",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  24: "EMFILE",
  27: "EFBIG",
  28: "ENOSPC",
  30: "EROFS",
  36: "ENAMETOOLONG",
  40: "ELOOP",
  110: "ETIMEDOUT",
  116: "ESTALE",
  122: "EDQUOT",
};

function toIoError(op: TransferOp, path: string, err: unknown): unknown {
  if (err instanceof TransferIoError || !(err instanceof Error)) return err;
  let code = (err as { code?: unknown }).code;
  if (typeof code !== "string") {
    const os = /\(os error (\d+)\)/.exec(err.message);
    code = os ? ERRNO_NAMES[Number(os[1])] ?? `errno ${os[1]}` : "EUNKNOWN";
  }
  const message = err.message.replace(/ \(os error \d+\).*$/, "");
  return new TransferIoError(op, path, code as string, message, err);
}

async function io<T>(op: TransferOp, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toIoError(op, path, err);
  }
}

/** Bytes read from storage by one call, per file; `source` includes a bytes-mode re-read. */
export interface BytesRead {
  /** Bytes read from the source. */
  source: number;
  /** Bytes read back from the destination. */
  destination: number;
}

/** Wall-clock time of each phase, in milliseconds. */
export interface CopyTimings {
  /** Read, hash and write. */
  copy: number;
  /** `fdatasync` of the temporary. */
  sync: number;
  /** `posix_fadvise(POSIX_FADV_DONTNEED)` of the temporary (0 when disabled). */
  dropCache: number;
  /** Verification read (and compare). */
  verify: number;
}

/** Outcome of {@linkcode copyAndHash}. */
export interface CopyResult {
  /** Bytes copied. */
  sizeBytes: number;
  /** MD5 of the source as read during the copy. */
  md5Src: string;
  /**
   * MD5 of the destination as read back (md5 mode); in bytes mode, `md5Src` when the bytes are
   * equal and `null` otherwise. `null` also when the copy was not verified (source changed).
   */
  md5Dst: string | null;
  /** Verification that was done. */
  verifyMode: VerifyMode;
  /** True when the destination equals the source. */
  ok: boolean;
  /** Why `ok` is false. */
  mismatch?: string;
  /** Bytes read per file: `(source + destination) / sizeBytes` is 2.0 in md5 mode. */
  bytesRead: BytesRead;
  /** True when the destination pages were dropped from the page cache before verification. */
  cacheDropped: boolean;
  /** Why dropping the cache was not possible, when `dropCache` was requested and failed. */
  cacheDropError?: string;
  /** Time spent per phase. */
  timingsMs: CopyTimings;
}

/** Buffering options shared by the copy, hash and verify functions. */
export interface BufferOptions {
  /** Bytes per buffer (default {@linkcode DEFAULT_BUFFER_SIZE}). */
  bufferSize?: number;
  /** Buffers in the pool, at least 2 (default {@linkcode DEFAULT_BUFFER_COUNT}). */
  buffers?: number;
  /** A pool to reuse instead of allocating one (then `bufferSize` and `buffers` are unused). */
  pool?: BufferPool;
}

/** Options of {@linkcode copyAndHash}. */
export interface CopyOptions extends BufferOptions {
  /** MD5 engine, from `openMd5Engine()`. */
  engine: Md5Engine;
  /** Verification (default `md5`). */
  verify?: VerifyMode;
  /**
   * Drop the temporary's pages from the page cache after `fdatasync`, so that verification
   * reads storage rather than memory (default true). Needs `--allow-ffi` and Linux; on failure
   * the copy goes on and `cacheDropError` says why.
   */
  dropCache?: boolean;
  /** Mode of the new temporary, before the umask (default 0o666). */
  mode?: number;
  /** Test hook: runs after `fdatasync`, before verification. */
  afterWrite?: (tmpPath: string) => Promise<void> | void;
  /** Receives the size of each chunk once it is written to the temporary (for progress). */
  onBytes?: (bytes: number) => void;
}

/** Options of {@linkcode verifyCopy}. */
export interface VerifyOptions extends BufferOptions {
  /** Verification to do. */
  mode: VerifyMode;
  /** MD5 engine (md5 mode). */
  engine: Md5Engine;
  /** MD5 of the source (md5 mode compares with it; bytes mode reports it when equal). */
  md5Src: string;
  /** Size of the source in bytes. */
  sizeBytes: number;
}

/** Outcome of {@linkcode verifyCopy}. */
export interface VerifyResult {
  /** MD5 of the destination (see {@linkcode CopyResult.md5Dst}). */
  md5Dst: string | null;
  /** True when the destination equals the source. */
  ok: boolean;
  /** Why `ok` is false. */
  mismatch?: string;
  /** Bytes read per file. */
  bytesRead: BytesRead;
}

/** Outcome of {@linkcode hashFile}. */
export interface HashFileResult {
  /** Lowercase hex MD5. */
  md5: string;
  /** Bytes read. */
  sizeBytes: number;
}

/**
 * Ends a stream that a failure left open, so that its engine frees what it holds; its
 * digest is moot. A stream that was digested already is never passed here.
 */
async function release(stream: Md5Stream | undefined): Promise<void> {
  if (stream) await Promise.resolve().then(() => stream.digest()).catch(() => {});
}

/**
 * Fixed set of reusable buffers; `acquire` waits while all are in use. Allocating a pool of
 * large buffers costs milliseconds, so a caller that copies many files keeps one pool per
 * file in flight and passes it as {@linkcode BufferOptions.pool}.
 */
export class BufferPool {
  readonly #free: Uint8Array[] = [];
  readonly #waiters: ((buf: Uint8Array) => void)[] = [];

  /** Bytes of each buffer. */
  readonly size: number;

  /** Allocates `count` buffers of `size` bytes. */
  constructor(size: number, count: number) {
    this.size = size;
    for (let i = 0; i < count; i++) this.#free.push(new Uint8Array(size));
  }

  /** Resolves to a free buffer, waiting for one to be released if needed. */
  acquire(): Promise<Uint8Array> {
    const buf = this.#free.pop();
    if (buf !== undefined) return Promise.resolve(buf);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Gives a buffer back to the pool. */
  release(buf: Uint8Array): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(buf);
    else this.#free.push(buf);
  }
}

function makePool(options: BufferOptions): BufferPool {
  if (options.pool !== undefined) return options.pool;
  const size = options.bufferSize ?? DEFAULT_BUFFER_SIZE;
  const count = options.buffers ?? DEFAULT_BUFFER_COUNT;
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`bufferSize must be a positive integer, got ${size}`);
  }
  if (!Number.isInteger(count) || count < 2) {
    throw new RangeError(`buffers must be an integer >= 2, got ${count}`);
  }
  return new BufferPool(size, count);
}

/** Reads until `buf` is full or the file ends (short reads are retried); returns the count. */
async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let n = 0;
  while (n < buf.length) {
    const r = await file.read(buf.subarray(n));
    if (r === null) break;
    n += r;
  }
  return n;
}

/** Consumes one chunk; the chunk stays valid until the returned promise settles. */
type Sink = (chunk: Uint8Array) => Promise<void>;

/** Appends each call to a chain, so a sink sees chunks in file order, one at a time. */
function serial(fn: Sink): Sink {
  let tail: Promise<void> = Promise.resolve();
  return (chunk) => {
    const p = tail.then(() => fn(chunk));
    tail = p;
    return p;
  };
}

/**
 * Reads `file` to its end through `pool`, handing every chunk to all `sinks`. The next chunk is
 * read while earlier ones are consumed; a buffer returns to the pool once every sink is done
 * with it. Returns the bytes read; rethrows the first read or sink error after draining.
 */
async function pump(
  file: Deno.FsFile,
  path: string,
  op: TransferOp,
  pool: BufferPool,
  sinks: Sink[],
): Promise<number> {
  let failure: { error: unknown } | undefined;
  const pending = new Set<Promise<void>>();
  let total = 0;
  while (failure === undefined) {
    const buf = await pool.acquire();
    if (failure !== undefined) {
      pool.release(buf);
      break;
    }
    let n: number;
    try {
      n = await readFull(file, buf);
    } catch (err) {
      pool.release(buf);
      failure ??= { error: toIoError(op, path, err) };
      break;
    }
    if (n === 0) {
      pool.release(buf);
      break;
    }
    total += n;
    const chunk = buf.subarray(0, n);
    const done: Promise<void> = Promise.allSettled(sinks.map((sink) => sink(chunk))).then(
      (results) => {
        for (const r of results) {
          if (r.status === "rejected") failure ??= { error: r.reason };
        }
        pool.release(buf);
        pending.delete(done);
      },
    );
    pending.add(done);
    if (n < buf.length) break; // readFull stops short only at the end of the file
  }
  await Promise.all(pending);
  if (failure !== undefined) throw failure.error;
  return total;
}

/**
 * Hashes `file` to its end into `stream`; returns the bytes read. Where the stream lends views
 * of its engine's memory (the SIMD engine), chunks are read straight into them, saving a copy
 * per chunk; otherwise chunks go through `pool` with reading and hashing overlapped.
 */
async function hashWhole(
  file: Deno.FsFile,
  path: string,
  op: TransferOp,
  pool: BufferPool,
  stream: Md5Stream,
): Promise<number> {
  const { reserve, commit } = stream;
  if (reserve === undefined || commit === undefined) {
    return await pump(file, path, op, pool, [serial((c) => stream.update(c))]);
  }
  let total = 0;
  while (true) {
    const view = await reserve.call(stream, pool.size);
    let n: number;
    try {
      n = await io(op, path, () => readFull(file, view));
    } catch (err) {
      commit.call(stream, 0);
      throw err;
    }
    commit.call(stream, n);
    total += n;
    if (n < view.length) return total;
  }
}

/** Index of the first differing byte among the first `n`, or -1. */
function firstDifference(a: Uint8Array, b: Uint8Array, n: number): number {
  let i = 0;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const words = n >>> 2;
    const wa = new Int32Array(a.buffer, a.byteOffset, words);
    const wb = new Int32Array(b.buffer, b.byteOffset, words);
    let w = 0;
    while (w < words && wa[w] === wb[w]) w++;
    i = w * 4;
  }
  for (; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function hex2(byte: number | undefined): string {
  return byte === undefined ? "EOF" : `0x${byte.toString(16).padStart(2, "0")}`;
}

async function openRead(path: string, op: TransferOp): Promise<Deno.FsFile> {
  return await io(op, path, () => Deno.open(path, { read: true }));
}

/**
 * Computes the MD5 of a file, reading the next chunk while the previous one is hashed.
 * File-system errors are thrown as {@linkcode TransferIoError} with op `open-file`/`read-file`.
 */
export async function hashFile(
  path: string,
  options: BufferOptions & { engine: Md5Engine },
): Promise<HashFileResult> {
  return await hashPath(path, "open-file", "read-file", options);
}

/** MD5 of a whole file, its errors reported as `openOp`/`readOp` of a transfer. */
async function hashPath(
  path: string,
  openOp: TransferOp,
  readOp: TransferOp,
  options: BufferOptions & { engine: Md5Engine },
): Promise<HashFileResult> {
  const pool = makePool(options);
  const file = await openRead(path, openOp);
  const stream = options.engine.create();
  let open: Md5Stream | undefined = stream;
  try {
    const sizeBytes = await hashWhole(file, path, readOp, pool, stream);
    open = undefined;
    return { md5: await stream.digest(), sizeBytes };
  } finally {
    file.close();
    await release(open);
  }
}

async function verifyBytes(
  srcPath: string,
  tmpPath: string,
  options: VerifyOptions,
): Promise<VerifyResult> {
  const pool = makePool(options);
  const a = await pool.acquire();
  const b = await pool.acquire();
  const src = await openRead(srcPath, "open-source").catch((err) => {
    pool.release(a);
    pool.release(b);
    throw err;
  });
  try {
    const dst = await openRead(tmpPath, "open-tmp");
    try {
      let offset = 0;
      const bytesRead: BytesRead = { source: 0, destination: 0 };
      while (true) {
        const [na, nb] = await Promise.all([
          io("read-source", srcPath, () => readFull(src, a)),
          io("read-tmp", tmpPath, () => readFull(dst, b)),
        ]);
        bytesRead.source += na;
        bytesRead.destination += nb;
        const common = Math.min(na, nb);
        let diff = firstDifference(a, b, common);
        if (diff < 0 && na !== nb) diff = common;
        if (diff >= 0) {
          const at = offset + diff;
          const detail = diff < common
            ? `source ${hex2(a[diff])}, destination ${hex2(b[diff])}`
            : na > nb
            ? "destination is shorter"
            : "destination is longer";
          return {
            md5Dst: null,
            ok: false,
            mismatch: `bytes differ at offset ${at} (${detail})`,
            bytesRead,
          };
        }
        offset += na;
        if (na < a.length) break;
      }
      if (offset !== options.sizeBytes) {
        return {
          md5Dst: null,
          ok: false,
          mismatch: `source is now ${offset} bytes, ${options.sizeBytes} were copied`,
          bytesRead,
        };
      }
      return { md5Dst: options.md5Src, ok: true, bytesRead };
    } finally {
      dst.close();
    }
  } finally {
    src.close();
    pool.release(a);
    pool.release(b);
  }
}

/**
 * Verifies a copy. Mode `md5` reads `tmpPath` once and compares its MD5 with `md5Src`
 * (`srcPath` is not read). Mode `bytes` reads both files and reports the first differing
 * offset. File-system errors are thrown as {@linkcode TransferIoError}.
 */
export async function verifyCopy(
  srcPath: string,
  tmpPath: string,
  options: VerifyOptions,
): Promise<VerifyResult> {
  if (options.mode === "bytes") return await verifyBytes(srcPath, tmpPath, options);
  const { md5: md5Dst, sizeBytes: n } = await hashPath(tmpPath, "open-tmp", "read-tmp", options);
  const bytesRead = { source: 0, destination: n };
  if (n !== options.sizeBytes) {
    return {
      md5Dst,
      ok: false,
      mismatch: `size mismatch: copied ${options.sizeBytes} bytes, destination has ${n}`,
      bytesRead,
    };
  }
  if (md5Dst !== options.md5Src) {
    return {
      md5Dst,
      ok: false,
      mismatch: `md5 mismatch: source ${options.md5Src}, destination ${md5Dst}`,
      bytesRead,
    };
  }
  return { md5Dst, ok: true, bytesRead };
}

const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

const O_RDONLY_CLOEXEC = 0o2000000; // O_RDONLY (0) | O_CLOEXEC, Linux x86_64 and aarch64
const POSIX_FADV_DONTNEED = 4;

/**
 * Asks the kernel to drop the clean page-cache pages of `path` with
 * `posix_fadvise(POSIX_FADV_DONTNEED)`, through libc FFI (Linux, `--allow-ffi`). Dirty pages
 * are not dropped: call it after `fdatasync`. Returns `null` on success, else the reason.
 * On GPFS the client pagepool is not the page cache and is not affected.
 */
export function dropPageCache(path: string): string | null {
  if (Deno.build.os !== "linux") return `posix_fadvise is only used on Linux`;
  const libc = openLibc();
  if (typeof libc === "string") return libc;
  {
    const s = libc.symbols;
    const errno = () => {
      const p = s.__errno_location();
      return p === null ? -1 : new Deno.UnsafePointerView(p).getInt32();
    };
    const cpath = new TextEncoder().encode(path + "\0");
    const fd = s.open(cpath, O_RDONLY_CLOEXEC);
    if (fd < 0) return `open(${path}) failed, errno ${errno()}`;
    try {
      const rc = s.posix_fadvise(fd, 0n, 0n, POSIX_FADV_DONTNEED);
      return rc === 0 ? null : `posix_fadvise(${path}) failed, error ${rc}`;
    } finally {
      s.close(fd);
    }
  }
}

/**
 * libc, opened once per process and kept (loading it for every file cost milliseconds);
 * the only module-level state here, and it never changes once set.
 */
let libcHandle: Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | undefined;

function openLibc(): Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | string {
  if (libcHandle) return libcHandle;
  const failures: string[] = [];
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      libcHandle = Deno.dlopen(name, LIBC_SYMBOLS);
      return libcHandle;
    } catch (err) {
      failures.push(`${name}: ${errorMessage(err)}`);
    }
  }
  return `cannot load libc (${failures.join("; ")})`;
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch {
    // already gone, or not removable: the original error matters more
  }
}

/**
 * Copies `srcPath` to a new file `tmpPath` (never overwriting one), hashing the bytes as they
 * pass, then `fdatasync`s it, optionally drops its cached pages, and verifies it (see
 * {@linkcode VerifyMode}). The source is read once for the copy; reading, hashing and writing
 * of consecutive chunks overlap. A verification mismatch gives `ok: false` and leaves
 * `tmpPath` in place for the caller to remove; a file-system error throws
 * {@linkcode TransferIoError} after removing `tmpPath` if this call created it.
 */
export async function copyAndHash(
  srcPath: string,
  tmpPath: string,
  options: CopyOptions,
): Promise<CopyResult> {
  const verifyMode = options.verify ?? "md5";
  const pool = makePool(options);
  const timingsMs: CopyTimings = { copy: 0, sync: 0, dropCache: 0, verify: 0 };
  const src = await openRead(srcPath, "open-source");
  let created = false;
  try {
    const before = await io("open-source", srcPath, () => src.stat());
    const dst = await io(
      "create-tmp",
      tmpPath,
      () => Deno.open(tmpPath, { write: true, createNew: true, mode: options.mode ?? 0o666 }),
    );
    created = true;
    let stream: Md5Stream | undefined;
    let sizeBytes: number;
    let md5Src: string;
    try {
      const hash = options.engine.create();
      stream = hash;
      let t = performance.now();
      sizeBytes = await pump(src, srcPath, "read-source", pool, [
        serial((c) => hash.update(c)),
        serial(async (c) => {
          await io("write-tmp", tmpPath, () => writeAll(dst, c));
          options.onBytes?.(c.length);
        }),
      ]);
      stream = undefined;
      md5Src = await hash.digest();
      timingsMs.copy = performance.now() - t;
      t = performance.now();
      await io("sync-tmp", tmpPath, () => dst.syncData());
      timingsMs.sync = performance.now() - t;
    } finally {
      dst.close();
      await release(stream);
    }
    const after = await io("read-source", srcPath, () => src.stat());

    const result: CopyResult = {
      sizeBytes,
      md5Src,
      md5Dst: null,
      verifyMode,
      ok: false,
      bytesRead: { source: sizeBytes, destination: 0 },
      cacheDropped: false,
      timingsMs,
    };
    if (
      sizeBytes !== before.size || after.size !== before.size ||
      after.mtime?.getTime() !== before.mtime?.getTime()
    ) {
      result.mismatch = `source changed during the copy (size ${before.size} at open, ` +
        `${sizeBytes} read, ${after.size} at end); is it still being downloaded?`;
      return result;
    }

    await options.afterWrite?.(tmpPath);

    if (options.dropCache ?? true) {
      const t = performance.now();
      const err = dropPageCache(tmpPath);
      timingsMs.dropCache = performance.now() - t;
      if (err === null) result.cacheDropped = true;
      else result.cacheDropError = err;
    }

    const t = performance.now();
    const v = await verifyCopy(srcPath, tmpPath, {
      mode: verifyMode,
      engine: options.engine,
      md5Src,
      sizeBytes,
      bufferSize: options.bufferSize,
      buffers: options.buffers,
      pool,
    });
    timingsMs.verify = performance.now() - t;
    result.md5Dst = v.md5Dst;
    result.ok = v.ok;
    if (v.mismatch !== undefined) result.mismatch = v.mismatch;
    result.bytesRead.source += v.bytesRead.source;
    result.bytesRead.destination += v.bytesRead.destination;
    return result;
  } catch (err) {
    if (created) await removeQuietly(tmpPath);
    throw err;
  } finally {
    src.close();
  }
}
