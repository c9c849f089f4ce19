/**
 * An open folder of the libc binding: files are created, opened, linked and unlinked by name
 * relative to its descriptor, so that a folder checked once is the folder used, whatever is
 * renamed or replaced on the way to it afterwards.
 * @module
 */

import { Descriptor } from "./descriptor.ts";
import { FileHandle } from "./file_handle.ts";
import { AT_FDCWD, type Libc } from "./libc.ts";

/** A folder opened with `O_PATH`; names are resolved relative to it. */
export class DirectoryHandle extends Descriptor {
  /**
   * Opens the folder at `path`, refusing a symlink as its last component
   * (`O_NOFOLLOW`: {@linkcode NotADirectoryError} or {@linkcode SymlinkError}).
   */
  static async open(libc: Libc, path: string): Promise<DirectoryHandle> {
    const f = libc.flags;
    const fd = await libc.openAt(
      AT_FDCWD,
      path,
      f.PATH | f.DIRECTORY | f.NOFOLLOW | f.CLOEXEC,
    );
    return new DirectoryHandle(libc, fd, path);
  }

  #child(name: string): string {
    return `${this.path}/${name}`;
  }

  /** Opens `name` for reading, never through a symlink; `O_NONBLOCK` keeps a FIFO from hanging. */
  async openRead(name: string): Promise<FileHandle> {
    const f = this.libc.flags;
    const path = this.#child(name);
    const flags = f.RDONLY | f.NOFOLLOW | f.NONBLOCK | f.CLOEXEC;
    return new FileHandle(this.libc, await this.libc.openAt(this.fd, name, flags, 0, path), path);
  }

  /** Creates `name` for reading and writing; fails with `AlreadyExistsError` if it exists. */
  async create(name: string, mode = 0o666): Promise<FileHandle> {
    const f = this.libc.flags;
    const path = this.#child(name);
    const flags = f.RDWR | f.CREAT | f.EXCL | f.NOFOLLOW | f.CLOEXEC;
    return new FileHandle(
      this.libc,
      await this.libc.openAt(this.fd, name, flags, mode, path),
      path,
    );
  }

  /** Links `from` as `to` (`linkat`): fails with `AlreadyExistsError`, never replaces. */
  link(from: string, to: string): Promise<void> {
    return this.libc.linkAt(this.fd, from, to, this.#child(to));
  }

  /** Removes the name `name`. */
  unlink(name: string): Promise<void> {
    return this.libc.unlinkAt(this.fd, name, this.#child(name));
  }
}
