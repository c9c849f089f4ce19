/**
 * The rank's memory for copying: a fixed number of aligned buffer pairs shared by every file
 * in flight, so that memory stays bounded whatever the number and size of the files.
 * @module
 */

import { alignedBuffer, DIRECT_IO_ALIGNMENT } from "../io/aligned_buffer.ts";

/** The two buffers one range of a copy holds while in flight. */
export interface BufferPair {
  /** The source bytes: read, hashed, written, then compared. */
  readonly source: Uint8Array<ArrayBuffer>;
  /** The same range read back from the copy on storage. */
  readonly back: Uint8Array<ArrayBuffer>;
}

/**
 * Up to `pairs` pairs of buffers of `bufferSize` bytes each, aligned for `O_DIRECT`, allocated
 * on first use and then reused. {@linkcode BufferBudget.acquire} waits while all are in use;
 * waiters are served in arrival order, so the files in flight take turns.
 */
export class BufferBudget {
  readonly #free: BufferPair[] = [];
  readonly #waiters: ((pair: BufferPair) => void)[] = [];
  #allocated = 0;
  /** Bytes of each buffer. */
  readonly bufferSize: number;
  /** Pairs at most. */
  readonly pairs: number;

  /**
   * @param bufferSize a positive multiple of {@linkcode DIRECT_IO_ALIGNMENT}
   * @param pairs at least 1
   */
  constructor(bufferSize: number, pairs: number) {
    if (!Number.isInteger(bufferSize) || bufferSize <= 0 || bufferSize % DIRECT_IO_ALIGNMENT) {
      throw new RangeError(
        `bufferSize must be a positive multiple of ${DIRECT_IO_ALIGNMENT}, got ${bufferSize}`,
      );
    }
    if (!Number.isInteger(pairs) || pairs < 1) {
      throw new RangeError(`pairs must be a positive integer, got ${pairs}`);
    }
    this.bufferSize = bufferSize;
    this.pairs = pairs;
  }

  /** Resolves to a free pair, allocating one while under the budget, else waiting. */
  acquire(): Promise<BufferPair> {
    const pair = this.#free.pop();
    if (pair !== undefined) return Promise.resolve(pair);
    if (this.#allocated < this.pairs) {
      this.#allocated++;
      return Promise.resolve({
        source: alignedBuffer(this.bufferSize),
        back: alignedBuffer(this.bufferSize),
      });
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Gives a pair back, to the longest waiter if any. */
  release(pair: BufferPair): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(pair);
    else this.#free.push(pair);
  }
}
