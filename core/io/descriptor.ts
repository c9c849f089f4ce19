/**
 * What the open files and folders of the libc binding share: a descriptor the handle owns and
 * closes once, and the path it stands for in messages.
 * @module
 */

import type { Libc } from "./libc.ts";

/** A descriptor that `libc` opened, owned by this handle; the base of the file and folder handles. */
export abstract class Descriptor {
  /** The binding the descriptor belongs to. */
  protected readonly libc: Libc;
  #open = true;
  /** The descriptor. */
  readonly fd: number;
  /** The path the descriptor was opened as, for messages. */
  readonly path: string;

  /** Wraps a descriptor that `libc` opened; the handle owns it and closes it. */
  constructor(libc: Libc, fd: number, path: string) {
    this.libc = libc;
    this.fd = fd;
    this.path = path;
  }

  /** Closes the descriptor; later calls do nothing. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.libc.closeFd(this.fd);
  }
}
