/**
 * System-call failures as typed errors: one class per errno a caller acts on, all derived
 * from {@linkcode IoError}, so that callers test `instanceof` and never match message text.
 * @module
 */

import { UserError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";

/** Linux errno numbers and their names (x86_64 and aarch64 share them). */
const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  27: "EFBIG",
  28: "ENOSPC",
  29: "ESPIPE",
  30: "EROFS",
  31: "EMLINK",
  36: "ENAMETOOLONG",
  38: "ENOSYS",
  40: "ELOOP",
  95: "EOPNOTSUPP",
  110: "ETIMEDOUT",
  116: "ESTALE",
  122: "EDQUOT",
};

/** What the user can do about an errno, when there is something to say. */
const HINTS: Readonly<Record<string, string>> = {
  ENOENT: "the path does not exist; check the downloader tree and the dataset folder",
  EEXIST: "the name is taken (left by an interrupted run, or another copy is running)",
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
  EMFILE: "too many open files; raise the limit (ulimit -n) or lower files_in_flight",
};

/** Name of an errno, such as `ENOENT`, or `errno N` for one without a name here. */
function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/**
 * A system call failed. The message names the call, the path it was about, the errno, the
 * system's text and, where there is one, what to do. Exit code
 * {@linkcode ExitCode.Failures}: the item failed and the user can act on the message.
 */
export class IoError extends UserError {
  /** The call that failed, such as `openat`, `pwrite` or `linkat`. */
  readonly call: string;
  /** The path the call was about. */
  readonly path: string;
  /** The errno, or 0 when the system's error number could not be learnt. */
  readonly errno: number;
  /** The errno's name, such as `ENOSPC`. */
  readonly code: string;
  /** The system's text for the errno, such as `No space left on device`. */
  readonly systemMessage: string;
  /** Creates the error. */
  constructor(call: string, path: string, errno: number, systemMessage: string) {
    const code = errno === 0 ? "EUNKNOWN" : errnoName(errno);
    const hint = HINTS[code];
    super(
      `${call} failed for ${path}: ${code}: ${systemMessage}${hint ? ` (${hint})` : ""}`,
      ExitCode.Failures,
    );
    this.call = call;
    this.path = path;
    this.errno = errno;
    this.code = code;
    this.systemMessage = systemMessage;
  }
}

/** `EPERM`: not permitted (also what some container sandboxes answer for calls they block). */
export class NotPermittedError extends IoError {}
/** `ENOENT`: no such file or directory. */
export class NotFoundError extends IoError {}
/** `EEXIST`: the name is taken (`O_EXCL`, `link`, `mkdir`). */
export class AlreadyExistsError extends IoError {}
/** `ENOTDIR`: a component of the path is not a directory (`O_DIRECTORY` met a file). */
export class NotADirectoryError extends IoError {}
/** `ELOOP`: the last component is a symlink and `O_NOFOLLOW` refused it (or a loop). */
export class SymlinkError extends IoError {}
/** `EXDEV`: `openat2` with `RESOLVE_BENEATH` found the path leaving its folder. */
export class OutsideFolderError extends IoError {}
/** `EINVAL`: an argument was refused, e.g. `O_DIRECT` on a file system without it. */
export class InvalidArgumentError extends IoError {}
/** `ENOSYS` or `EOPNOTSUPP`: the kernel or the file system lacks the call. */
export class NotSupportedError extends IoError {}
/** `EAGAIN`: try again (`openat2` raced with a rename). */
export class TryAgainError extends IoError {}

const CLASSES: Readonly<Record<number, typeof IoError>> = {
  1: NotPermittedError,
  2: NotFoundError,
  11: TryAgainError,
  17: AlreadyExistsError,
  18: OutsideFolderError,
  20: NotADirectoryError,
  22: InvalidArgumentError,
  38: NotSupportedError,
  40: SymlinkError,
  95: NotSupportedError,
};

/** The typed error for `errno` of `call` on `path`; `systemMessage` is `strerror(errno)`. */
export function ioErrorFromErrno(
  errno: number,
  call: string,
  path: string,
  systemMessage: string,
): IoError {
  const Class = CLASSES[errno] ?? IoError;
  return new Class(call, path, errno, systemMessage);
}
