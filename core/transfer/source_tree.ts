/**
 * Opening sources inside the images folder, never through a symlink out of it, in one path
 * look-up per file.
 * @module
 */

import { relative } from "node:path";
import { UserError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import { isWithin } from "../is_within.ts";
import { FileHandle } from "../io/file_handle.ts";
import {
  NotFoundError,
  NotPermittedError,
  NotSupportedError,
  OutsideFolderError,
  SymlinkError,
  TryAgainError,
} from "../io/io_errors.ts";
import { AT_FDCWD, type Libc, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS } from "../io/libc.ts";

/** A source cannot be copied: gone, not a regular file, or outside the images folder. */
export class SourceRefusedError extends UserError {
  /** Creates the error; the message is the reason recorded for the file. */
  constructor(message: string) {
    super(message, ExitCode.Failures);
  }
}

/** Options of {@linkcode SourceTree.open}. */
export interface SourceTreeOptions {
  /** Use `openat2` where the kernel has it (default true; tests turn it off). */
  openat2?: boolean;
}

/**
 * The images folder, open for the whole run. {@linkcode SourceTree.openFile} opens a source
 * with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` relative to the folder's descriptor:
 * one call that also refuses any path leaving the folder. Where the kernel lacks `openat2`
 * (before Linux 5.6, or blocked by a container's sandbox), or where it refuses a path that may
 * still be inside (an absolute symlink), the file is opened by path and the kernel's name of what was opened
 * (`/proc/self/fd/N`) must lie in the folder: two calls, and the same rule.
 */
export class SourceTree {
  readonly #libc: Libc;
  readonly #dir: number;
  readonly #root: string;
  readonly #realRoot: string;
  #openat2: boolean;

  private constructor(libc: Libc, dir: number, root: string, realRoot: string, openat2: boolean) {
    this.#libc = libc;
    this.#dir = dir;
    this.#root = root;
    this.#realRoot = realRoot;
    this.#openat2 = openat2;
  }

  /** Opens the images folder `root` (following symlinks to it: it is the user's choice). */
  static async open(
    libc: Libc,
    root: string,
    options: SourceTreeOptions = {},
  ): Promise<SourceTree> {
    const f = libc.flags;
    const dir = await libc.openAt(AT_FDCWD, root, f.PATH | f.DIRECTORY | f.CLOEXEC);
    try {
      return new SourceTree(libc, dir, root, await Deno.realPath(root), options.openat2 ?? true);
    } catch (err) {
      libc.closeFd(dir);
      throw err;
    }
  }

  /**
   * Opens the source at `path` (under the images folder by name) for reading. The last
   * component is never followed if it is a symlink.
   *
   * @throws {SourceRefusedError} the source is gone, not a regular file, or resolves outside
   *   the images folder.
   * @throws {IoError} any other failure of the system.
   */
  async openFile(path: string): Promise<FileHandle> {
    const f = this.#libc.flags;
    const flags = f.RDONLY | f.NOFOLLOW | f.NONBLOCK | f.CLOEXEC;
    try {
      return this.#regular(await this.#open(path, flags), path);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new SourceRefusedError(`source ${path} is gone (ENOENT: no such file)`);
      }
      if (err instanceof SymlinkError) {
        throw new SourceRefusedError(`source ${path} is not a regular file any more`);
      }
      throw err;
    }
  }

  async #open(path: string, flags: number): Promise<number> {
    const rel = relative(this.#root, path);
    for (let attempt = 0; this.#openat2 && attempt < 4; attempt++) {
      try {
        const resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        return await this.#libc.openBeneath(this.#dir, rel, flags, resolve, path);
      } catch (err) {
        // ENOSYS before Linux 5.6; EPERM from container sandboxes that block the call.
        if (err instanceof NotSupportedError || err instanceof NotPermittedError) {
          this.#openat2 = false;
        } else if (err instanceof OutsideFolderError) break;
        else if (!(err instanceof TryAgainError)) throw err;
      }
    }
    const fd = await this.#libc.openAt(AT_FDCWD, path, flags, 0);
    let real: string;
    try {
      real = this.#libc.readlink(`/proc/self/fd/${fd}`);
    } catch (err) {
      this.#libc.closeFd(fd);
      throw err;
    }
    if (!isWithin(this.#realRoot, real)) {
      this.#libc.closeFd(fd);
      throw new SourceRefusedError(
        `source ${path} resolves to ${real}, outside the images folder ${this.#realRoot}: ` +
          `refused (symlinks are never followed out of it)`,
      );
    }
    return fd;
  }

  #regular(fd: number, path: string): FileHandle {
    const handle = new FileHandle(this.#libc, fd, path);
    try {
      if (handle.stat().isFile) return handle;
    } catch (err) {
      handle.close();
      throw err;
    }
    handle.close();
    throw new SourceRefusedError(`source ${path} is not a regular file any more`);
  }

  /** Closes the folder's descriptor. */
  close(): void {
    this.#libc.closeFd(this.#dir);
  }
}
