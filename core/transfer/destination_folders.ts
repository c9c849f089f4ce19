/**
 * The destination folders of a run, each checked (and created) once, then kept open so that
 * every file of a folder is created, linked and unlinked relative to its descriptor.
 * @module
 */

import { dirname } from "node:path";
import { UserError } from "../errors.ts";
import { ExitCode } from "../exit_codes.ts";
import { DirectoryHandle } from "../io/directory_handle.ts";
import {
  AlreadyExistsError,
  NotADirectoryError,
  NotFoundError,
  SymlinkError,
} from "../io/io_errors.ts";
import type { Libc } from "../io/libc.ts";
import { lstatOrNull } from "../io/lstat_or_null.ts";

/** A destination folder is a symlink or not a folder: nothing is written through it. */
export class DestinationRefusedError extends UserError {
  /** Creates the error; the message is the reason recorded for each file of the folder. */
  constructor(message: string) {
    super(message, ExitCode.Failures);
  }
}

interface Entry {
  readonly handle: Promise<DirectoryHandle>;
  users: number;
}

/** Folders kept open at most when unused (a run touches two per server name). */
const DEFAULT_KEEP_OPEN = 64;

/**
 * The run's destination folders. {@linkcode DestinationFolders.use} opens a folder the first
 * time (creating it and its parents if missing, refusing a symlink as its last component) and
 * hands the same descriptor to every later file; folders nobody uses are closed, least recently
 * used first, beyond `keepOpen`. A refused folder stays refused for the run.
 */
export class DestinationFolders {
  readonly #libc: Libc;
  readonly #keepOpen: number;
  /** In least-recently-used order (a Map iterates in insertion order). */
  readonly #entries = new Map<string, Entry>();

  /** Creates the cache; `keepOpen` unused folders stay open at most. */
  constructor(libc: Libc, keepOpen = DEFAULT_KEEP_OPEN) {
    this.#libc = libc;
    this.#keepOpen = keepOpen;
  }

  /**
   * Runs `fn` with the open folder `path`; the folder stays open meanwhile.
   *
   * @throws {DestinationRefusedError} the folder is a symlink or not a folder.
   * @throws {IoError} it cannot be created or opened.
   */
  async use<T>(path: string, fn: (dir: DirectoryHandle) => Promise<T>): Promise<T> {
    let entry = this.#entries.get(path);
    if (entry !== undefined) this.#entries.delete(path);
    else {
      const created: Entry = { handle: this.#open(path), users: 0 };
      // A folder that failed to open for a passing reason is tried again by the next file.
      created.handle.catch((err) => {
        const refused = err instanceof DestinationRefusedError;
        if (!refused && this.#entries.get(path) === created) this.#entries.delete(path);
      });
      entry = created;
    }
    this.#entries.set(path, entry);
    entry.users++;
    try {
      return await fn(await entry.handle);
    } finally {
      entry.users--;
      await this.#trim();
    }
  }

  async #open(path: string): Promise<DirectoryHandle> {
    try {
      return await DirectoryHandle.open(this.#libc, path);
    } catch (err) {
      if (err instanceof NotFoundError) {
        this.#makeFolders(path);
        return await DirectoryHandle.open(this.#libc, path);
      }
      if (err instanceof NotADirectoryError || err instanceof SymlinkError) {
        const info = await lstatOrNull(path);
        throw new DestinationRefusedError(
          info?.isSymlink
            ? `destination folder ${path} is a symlink: refused (never followed)`
            : `destination folder ${path} is not a folder: refused`,
        );
      }
      throw err;
    }
  }

  /** `mkdir -p`: creates the missing folders of `path`, parents first. */
  #makeFolders(path: string): void {
    try {
      this.#libc.mkdir(path);
    } catch (err) {
      if (err instanceof AlreadyExistsError) return;
      if (!(err instanceof NotFoundError) || dirname(path) === path) throw err;
      this.#makeFolders(dirname(path));
      try {
        this.#libc.mkdir(path);
      } catch (again) {
        if (!(again instanceof AlreadyExistsError)) throw again;
      }
    }
  }

  async #trim(): Promise<void> {
    let unused = 0;
    for (const e of this.#entries.values()) if (e.users === 0) unused++;
    const closing: Promise<void>[] = [];
    for (const [path, e] of this.#entries) {
      if (unused <= this.#keepOpen) break;
      if (e.users > 0) continue;
      this.#entries.delete(path);
      unused--;
      closing.push(e.handle.then((d) => d.close(), () => {}));
    }
    await Promise.all(closing);
  }

  /** Closes every folder; call once no file is in flight. */
  async close(): Promise<void> {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(all.map((e) => e.handle.then((d) => d.close(), () => {})));
  }
}
