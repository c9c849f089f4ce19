/**
 * The one libc binding of the core: the system calls the transfer needs that Deno lacks
 * (`openat2`, `pread`/`pwrite` on descriptors opened with `O_DIRECT`, `sync_file_range`,
 * `posix_fadvise`, `linkat` relative to a folder, ...), each failure thrown as a typed
 * {@linkcode IoError}. Open it once per process with {@linkcode openLibc} and pass it on.
 *
 * Calls that may wait for storage run on Deno's blocking thread pool (`nonblocking` FFI), so the
 * rank's thread keeps hashing and comparing meanwhile. `errno` is per thread and such a call
 * sets the pool thread's, which this thread cannot read; so when one fails, it is made again
 * synchronously here, where `errno` can be read. That is sound for calls whose repetition does
 * what the first would have done (`pread`, `pwrite` of the same bytes at the same offset, opens,
 * `linkat`, `unlinkat`). A repeated `fdatasync` or `sync_file_range` may succeed where the first
 * failed (a write-back error is reported once): then the error says that the number was lost.
 *
 * One concern despite its length: the symbol table and one thin checked wrapper per call, kept
 * together so that every call and every `errno` path of the binding is in this one file.
 * @module
 */

import { errorMessage, UserError } from "../errors.ts";
import { IoError, ioErrorFromErrno } from "./io_errors.ts";

const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32", nonblocking: true },
  openat_sync: { name: "openat", parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  openat2: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "buffer", "usize"],
    result: "i64",
    nonblocking: true,
  },
  openat2_sync: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "buffer", "usize"],
    result: "i64",
  },
  fstat: { name: "syscall", parameters: ["i64", "i32", "buffer"], result: "i64" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize", nonblocking: true },
  pread_sync: { name: "pread", parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize", nonblocking: true },
  pwrite_sync: { name: "pwrite", parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  fdatasync: { parameters: ["i32"], result: "i32", nonblocking: true },
  fdatasync_sync: { name: "fdatasync", parameters: ["i32"], result: "i32" },
  sync_file_range: { parameters: ["i32", "i64", "i64", "u32"], result: "i32", nonblocking: true },
  sync_file_range_sync: {
    name: "sync_file_range",
    parameters: ["i32", "i64", "i64", "u32"],
    result: "i32",
  },
  // Returns the error number itself (not -1 and errno): safe off this thread.
  posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32", nonblocking: true },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  linkat: {
    parameters: ["i32", "buffer", "i32", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  linkat_sync: {
    name: "linkat",
    parameters: ["i32", "buffer", "i32", "buffer", "i32"],
    result: "i32",
  },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32", nonblocking: true },
  unlinkat_sync: { name: "unlinkat", parameters: ["i32", "buffer", "i32"], result: "i32" },
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  memcmp: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
} as const;

type LibcLibrary = Deno.DynamicLibrary<typeof SYMBOLS>;

/** Open flags and numbers that differ between the two Linux architectures supported. */
interface ArchConstants {
  readonly O_DIRECT: number;
  readonly O_DIRECTORY: number;
  readonly O_NOFOLLOW: number;
  readonly SYS_fstat: number;
  /** Offset of `st_mode` in the kernel's `struct stat`. */
  readonly statModeOffset: number;
}

const ARCH: Readonly<Record<string, ArchConstants>> = {
  x86_64: {
    O_DIRECT: 0o40000,
    O_DIRECTORY: 0o200000,
    O_NOFOLLOW: 0o400000,
    SYS_fstat: 5,
    statModeOffset: 24,
  },
  aarch64: {
    O_DIRECT: 0o200000,
    O_DIRECTORY: 0o40000,
    O_NOFOLLOW: 0o100000,
    SYS_fstat: 80,
    statModeOffset: 16,
  },
};

/** `open(2)` flags of this machine. */
export interface OpenFlags {
  /** `O_RDONLY`. */
  readonly RDONLY: number;
  /** `O_RDWR`. */
  readonly RDWR: number;
  /** `O_CREAT`. */
  readonly CREAT: number;
  /** `O_EXCL`. */
  readonly EXCL: number;
  /** `O_NONBLOCK` (opening a FIFO by mistake does not hang). */
  readonly NONBLOCK: number;
  /** `O_CLOEXEC`. */
  readonly CLOEXEC: number;
  /** `O_PATH`. */
  readonly PATH: number;
  /** `O_DIRECT`. */
  readonly DIRECT: number;
  /** `O_DIRECTORY`. */
  readonly DIRECTORY: number;
  /** `O_NOFOLLOW`. */
  readonly NOFOLLOW: number;
}

/** `AT_FDCWD`: paths of `*at` calls relative to the working folder (or absolute). */
export const AT_FDCWD = -100;
/** `openat2` resolve flag: every component must stay beneath the starting folder. */
export const RESOLVE_BENEATH = 0x08;
/** `openat2` resolve flag: no `/proc/<pid>/fd/*`-style magic links. */
export const RESOLVE_NO_MAGICLINKS = 0x02;

const SYS_OPENAT2 = 437; // the same number on x86_64 and aarch64
const F_GETFL = 3;
const F_SETFL = 4;
const POSIX_FADV_DONTNEED = 4;
const SYNC_FILE_RANGE_ALL = 1 | 2 | 4; // WAIT_BEFORE | WRITE | WAIT_AFTER
const S_IFMT = 0o170000;

/** What `fstat` tells about an open file. */
export interface FdStat {
  /** Size in bytes. */
  size: number;
  /** `st_mode` (type and permission bits). */
  mode: number;
  /** Modification time, ms since the epoch (with the sub-millisecond part). */
  mtimeMs: number;
  /** A regular file. */
  isFile: boolean;
  /** A folder. */
  isDirectory: boolean;
}

/**
 * libc cannot be loaded, or this machine is not one the binding knows: the tool needs Linux
 * with glibc (or musl) on x86_64 or aarch64, and `--allow-ffi`. Exit code 2.
 */
export class LibcUnavailableError extends UserError {
  /** Creates the error with the reason. */
  constructor(reason: string) {
    super(`cannot use libc through FFI: ${reason}`);
  }
}

const ENCODER = new TextEncoder();

function cString(text: string): Uint8Array<ArrayBuffer> {
  const bytes = ENCODER.encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/**
 * A loaded libc. Every method that fails throws the {@linkcode IoError} subclass of its errno,
 * naming `label` (the path the descriptor or name stands for).
 */
export class Libc {
  readonly #lib: LibcLibrary;
  readonly #arch: ArchConstants;
  readonly #stat = new Uint8Array(256);
  /** `open(2)` flags of this machine. */
  readonly flags: OpenFlags;

  /** Wraps a loaded library; use {@linkcode openLibc}. */
  constructor(lib: LibcLibrary, arch: ArchConstants) {
    this.#lib = lib;
    this.#arch = arch;
    this.flags = Object.freeze({
      RDONLY: 0,
      RDWR: 2,
      CREAT: 0o100,
      EXCL: 0o200,
      NONBLOCK: 0o4000,
      CLOEXEC: 0o2000000,
      PATH: 0o10000000,
      DIRECT: arch.O_DIRECT,
      DIRECTORY: arch.O_DIRECTORY,
      NOFOLLOW: arch.O_NOFOLLOW,
    });
  }

  /** Unloads the binding; the object is unusable afterwards. */
  close(): void {
    this.#lib.close();
  }

  /** The error of the last failed call made on this thread. */
  #error(call: string, label: string): IoError {
    const s = this.#lib.symbols;
    const p = s.__errno_location();
    const errno = p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
    return ioErrorFromErrno(errno, call, label, this.#strerror(errno));
  }

  #strerror(errno: number): string {
    const text = this.#lib.symbols.strerror(errno);
    return text === null ? `errno ${errno}` : Deno.UnsafePointerView.getCString(text);
  }

  /** Awaits a pool-thread call; on failure repeats it here to learn errno (see the module). */
  async #pooled(
    pending: Promise<number | bigint>,
    again: () => number | bigint,
    call: string,
    label: string,
  ): Promise<number> {
    const rc = Number(await pending);
    if (rc >= 0) return rc;
    const rc2 = Number(again());
    if (rc2 >= 0) return rc2;
    throw this.#error(call, label);
  }

  /** Like `#pooled` for calls whose failure a repetition may not see again. */
  async #pooledOnce(
    pending: Promise<number>,
    again: () => number,
    call: string,
    label: string,
  ): Promise<void> {
    if ((await pending) === 0) return;
    if (again() !== 0) throw this.#error(call, label);
    throw new IoError(
      call,
      label,
      0,
      "failed on a worker thread, and the repeated call succeeded, so the system's error " +
        "number is lost (a write-back error is reported once); retry, and check the storage",
    );
  }

  /** `openat(dirFd, path, flags, mode)`: a new descriptor. */
  openAt(dirFd: number, path: string, flags: number, mode = 0o666, label = path): Promise<number> {
    const name = cString(path);
    const s = this.#lib.symbols;
    return this.#pooled(
      s.openat(dirFd, name, flags, mode),
      () => s.openat_sync(dirFd, name, flags, mode),
      "openat",
      label,
    );
  }

  /**
   * `openat2(dirFd, path, {flags, resolve})`. Throws {@linkcode NotSupportedError} where the
   * kernel lacks it (before Linux 5.6).
   */
  openBeneath(
    dirFd: number,
    path: string,
    flags: number,
    resolve: number,
    label = path,
  ): Promise<number> {
    const name = cString(path);
    const how = new BigUint64Array([BigInt(flags), 0n, BigInt(resolve)]);
    const s = this.#lib.symbols;
    const nr = BigInt(SYS_OPENAT2);
    return this.#pooled(
      s.openat2(nr, dirFd, name, how, 24n),
      () => s.openat2_sync(nr, dirFd, name, how, 24n),
      "openat2",
      label,
    );
  }

  /** `fstat(fd)` through the raw system call (glibc's spells it as a path-based `fstatat`). */
  fstat(fd: number, label: string): FdStat {
    const buf = this.#stat;
    if (Number(this.#lib.symbols.fstat(BigInt(this.#arch.SYS_fstat), fd, buf)) < 0) {
      throw this.#error("fstat", label);
    }
    const view = new DataView(buf.buffer);
    const mode = view.getUint32(this.#arch.statModeOffset, true);
    const type = mode & S_IFMT;
    return {
      size: Number(view.getBigInt64(48, true)),
      mode,
      mtimeMs: Number(view.getBigInt64(88, true)) * 1000 +
        Number(view.getBigInt64(96, true)) / 1e6,
      isFile: type === 0o100000,
      isDirectory: type === 0o040000,
    };
  }

  /** `pread`: bytes read into `buf` from `offset` (0 at the end of the file). */
  pread(fd: number, buf: Uint8Array, offset: number, label: string): Promise<number> {
    const s = this.#lib.symbols;
    const n = BigInt(buf.byteLength);
    const at = BigInt(offset);
    return this.#pooled(
      s.pread(fd, buf, n, at),
      () => s.pread_sync(fd, buf, n, at),
      "pread",
      label,
    );
  }

  /** `pwrite`: bytes of `buf` written at `offset` (possibly fewer than given). */
  pwrite(fd: number, buf: Uint8Array, offset: number, label: string): Promise<number> {
    const s = this.#lib.symbols;
    const n = BigInt(buf.byteLength);
    const at = BigInt(offset);
    return this.#pooled(
      s.pwrite(fd, buf, n, at),
      () => s.pwrite_sync(fd, buf, n, at),
      "pwrite",
      label,
    );
  }

  /** `fdatasync(fd)`. */
  fdatasync(fd: number, label: string): Promise<void> {
    const s = this.#lib.symbols;
    return this.#pooledOnce(s.fdatasync(fd), () => s.fdatasync_sync(fd), "fdatasync", label);
  }

  /** `sync_file_range(fd, offset, length, WAIT_BEFORE | WRITE | WAIT_AFTER)`. */
  syncFileRange(fd: number, offset: number, length: number, label: string): Promise<void> {
    const s = this.#lib.symbols;
    const [at, n] = [BigInt(offset), BigInt(length)];
    return this.#pooledOnce(
      s.sync_file_range(fd, at, n, SYNC_FILE_RANGE_ALL),
      () => s.sync_file_range_sync(fd, at, n, SYNC_FILE_RANGE_ALL),
      "sync_file_range",
      label,
    );
  }

  /** `posix_fadvise(fd, offset, length, POSIX_FADV_DONTNEED)`: drops clean cached pages. */
  async dropCache(fd: number, offset: number, length: number, label: string): Promise<void> {
    const rc = await this.#lib.symbols.posix_fadvise(
      fd,
      BigInt(offset),
      BigInt(length),
      POSIX_FADV_DONTNEED,
    );
    if (rc !== 0) throw ioErrorFromErrno(rc, "posix_fadvise", label, this.#strerror(rc));
  }

  /** Adds `flag` to the descriptor's status flags (`fcntl` `F_GETFL`/`F_SETFL`). */
  addStatusFlag(fd: number, flag: number, label: string): void {
    const s = this.#lib.symbols;
    const flags = s.fcntl(fd, F_GETFL, 0);
    if (flags < 0 || s.fcntl(fd, F_SETFL, flags | flag) < 0) throw this.#error("fcntl", label);
  }

  /** `close(fd)`; a failure is ignored (the descriptor is released either way on Linux). */
  closeFd(fd: number): void {
    this.#lib.symbols.close(fd);
  }

  /** `linkat(dirFd, from, dirFd, to, 0)`: never replaces `to`. */
  linkAt(dirFd: number, from: string, to: string, label: string): Promise<void> {
    const [a, b] = [cString(from), cString(to)];
    const s = this.#lib.symbols;
    return this.#pooled(
      s.linkat(dirFd, a, dirFd, b, 0),
      () => s.linkat_sync(dirFd, a, dirFd, b, 0),
      "linkat",
      label,
    ).then(() => {});
  }

  /** `unlinkat(dirFd, name, 0)`. */
  unlinkAt(dirFd: number, name: string, label: string): Promise<void> {
    const c = cString(name);
    const s = this.#lib.symbols;
    return this.#pooled(
      s.unlinkat(dirFd, c, 0),
      () => s.unlinkat_sync(dirFd, c, 0),
      "unlinkat",
      label,
    ).then(() => {});
  }

  /** `mkdirat(AT_FDCWD, path, mode)` (the umask applies). */
  mkdir(path: string, mode = 0o777): void {
    if (this.#lib.symbols.mkdirat(AT_FDCWD, cString(path), mode) !== 0) {
      throw this.#error("mkdir", path);
    }
  }

  /** `readlink(path)`: the target of a symlink. */
  readlink(path: string): string {
    const buf = new Uint8Array(4096);
    const n = Number(this.#lib.symbols.readlink(cString(path), buf, BigInt(buf.length)));
    if (n < 0) throw this.#error("readlink", path);
    return new TextDecoder().decode(buf.subarray(0, n));
  }

  /** True when the first `length` bytes of `a` and `b` are equal (`memcmp`). */
  equalBytes(a: Uint8Array, b: Uint8Array, length: number): boolean {
    if (length === 0) return true;
    return this.#lib.symbols.memcmp(a, b, BigInt(length)) === 0;
  }
}

/**
 * Loads libc (`libc.so.6`, else `libc.so`) once; pass the result to whatever needs it and
 * close it at the end. Linux on x86_64 or aarch64, `--allow-ffi`.
 * @throws {LibcUnavailableError} on another system, or when the library cannot be loaded.
 */
export function openLibc(): Libc {
  const arch = Deno.build.os === "linux" ? ARCH[Deno.build.arch] : undefined;
  if (arch === undefined) {
    throw new LibcUnavailableError(
      `this tool's I/O layer supports Linux on x86_64 and aarch64, not ` +
        `${Deno.build.os} on ${Deno.build.arch}`,
    );
  }
  const failures: string[] = [];
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      return new Libc(Deno.dlopen(name, SYMBOLS), arch);
    } catch (err) {
      failures.push(`${name}: ${errorMessage(err)}`);
    }
  }
  throw new LibcUnavailableError(failures.join("; "));
}
