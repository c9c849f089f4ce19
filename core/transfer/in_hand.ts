/**
 * The bytes a rank has taken and not yet copied. When ranks balance at run time, a file a rank
 * has taken can no longer go to a faster rank, so a rank takes another file only while it holds
 * less than a bound (the runner's: a `files_in_flight`-th of a fair share of the run, at least
 * what the rank's buffers hold): with large files it holds one or two at a time, with small
 * files many, up to `files_in_flight`.
 * @module
 */

/** Bytes in hand of a rank, and a wait until there is room for another file. */
export class InHand {
  #limit: number;
  readonly #files = new Map<string, { size: number; copied: number }>();
  #left = 0;
  #waiting: Array<() => void> = [];

  /** Counts nothing yet; taking waits while `limit` bytes or more are in hand. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Taking waits while this many bytes or more are in hand (`Infinity`: never waits). */
  get limit(): number {
    return this.#limit;
  }

  /** Changes the bound; raising it lets the workers waiting for room take at once. */
  setLimit(limit: number): void {
    this.#limit = limit;
    this.#change(0);
  }

  /** Bytes taken and not yet copied. */
  get left(): number {
    return this.#left;
  }

  /** Resolves once fewer than `limit` bytes are in hand (at once when they are). */
  async room(): Promise<void> {
    while (this.#left >= this.#limit) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  /** Counts the file `key` of `size` bytes as taken. */
  take(key: string, size: number): void {
    this.#files.set(key, { size, copied: 0 });
    this.#left += size;
  }

  /** Counts `bytes` more of file `key` as copied (a retry counts again: up to its size). */
  copied(key: string, bytes: number): void {
    const file = this.#files.get(key);
    if (file === undefined) return;
    const more = Math.min(bytes, file.size - file.copied);
    file.copied += more;
    this.#change(more);
  }

  /** File `key` is finished, copied or not. */
  done(key: string): void {
    const file = this.#files.get(key);
    if (file === undefined) return;
    this.#files.delete(key);
    this.#change(file.size - file.copied);
  }

  #change(less: number): void {
    this.#left -= less;
    if (this.#left >= this.#limit) return;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const resolve of waiting) resolve();
  }
}
