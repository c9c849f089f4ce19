/**
 * An open file of the libc binding: positional reads and writes, syncs and cache control on
 * its descriptor, errors naming its path.
 * @module
 */

import { alignedBuffer, alignUp, DIRECT_IO_ALIGNMENT } from "./aligned_buffer.ts";
import { InvalidArgumentError, NotSupportedError } from "./io_errors.ts";
import { Descriptor } from "./descriptor.ts";
import type { FdStat } from "./libc.ts";

/** An open file descriptor and the path it stands for (in messages). */
export class FileHandle extends Descriptor {
  #direct = false;
  #rangeSync = true;

  /** True once {@linkcode FileHandle.enableDirect} succeeded: I/O bypasses the page cache. */
  get direct(): boolean {
    return this.#direct;
  }

  /**
   * Turns on `O_DIRECT`: reads and writes go between the buffer and storage, bypassing the
   * page cache; buffers, offsets and lengths must then be multiples of
   * {@linkcode DIRECT_IO_ALIGNMENT}. Returns false when the file system refuses it (`EINVAL`,
   * e.g. ramfs); other failures throw.
   */
  enableDirect(): boolean {
    try {
      this.libc.addStatusFlag(this.fd, this.libc.flags.DIRECT, this.path);
    } catch (err) {
      if (err instanceof InvalidArgumentError) return false;
      throw err;
    }
    this.#direct = true;
    return true;
  }

  /** `fstat` of the descriptor (no path look-up). */
  stat(): FdStat {
    return this.libc.fstat(this.fd, this.path);
  }

  /**
   * Reads into `buf` from `offset` until `buf` is full or the file ends; returns the bytes
   * read. In direct mode a short read that leaves an unaligned offset ends the loop too (it
   * happens only at the end of the file).
   */
  async readFull(buf: Uint8Array, offset: number): Promise<number> {
    let done = 0;
    while (done < buf.length) {
      const n = await this.libc.pread(this.fd, buf.subarray(done), offset + done, this.path);
      if (n === 0) break;
      done += n;
      if (this.#direct && done % DIRECT_IO_ALIGNMENT !== 0) break;
    }
    return done;
  }

  /**
   * Reads `length` bytes at `offset` into a new buffer (fewer at the end of the file), in
   * direct mode through an aligned buffer covering the range.
   */
  async readRange(offset: number, length: number): Promise<Uint8Array> {
    if (!this.#direct) {
      const buf = new Uint8Array(length);
      return buf.subarray(0, await this.readFull(buf, offset));
    }
    const start = offset - (offset % DIRECT_IO_ALIGNMENT);
    const buf = alignedBuffer(alignUp(offset + length) - start);
    const n = await this.readFull(buf, start);
    const skip = offset - start;
    return buf.subarray(skip, Math.max(skip, Math.min(n, skip + length)));
  }

  /** Writes all of `buf` at `offset`, writing again after a short write. */
  async writeAll(buf: Uint8Array, offset: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      done += await this.libc.pwrite(this.fd, buf.subarray(done), offset + done, this.path);
    }
  }

  /** `fdatasync`: the data and the size are on storage. */
  syncData(): Promise<void> {
    return this.libc.fdatasync(this.fd, this.path);
  }

  /**
   * Writes a range's dirty pages to storage and waits for them (`sync_file_range`); where the
   * file system lacks it, the whole file's (`fdatasync`).
   */
  async syncRange(offset: number, length: number): Promise<void> {
    if (this.#rangeSync) {
      try {
        return await this.libc.syncFileRange(this.fd, offset, length, this.path);
      } catch (err) {
        if (!(err instanceof NotSupportedError || err instanceof InvalidArgumentError)) throw err;
        this.#rangeSync = false;
      }
    }
    await this.syncData();
  }

  /** Drops a range's clean pages from the page cache (`posix_fadvise(DONTNEED)`). */
  dropCache(offset: number, length: number): Promise<void> {
    return this.libc.dropCache(this.fd, offset, length, this.path);
  }
}
