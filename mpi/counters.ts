/**
 * Shared counters: a few atomic int64 per rank that any rank can read or add to without the
 * owner taking part, like mpi4py's `MPI.Win.Allocate` used with `Fetch_and_op`. Under MPI they
 * live in a one-sided window ({@linkcode WindowCounters}); in a single process, in memory
 * ({@linkcode LocalCounters}), with the same behaviour.
 *
 * Passive-target progress: with some transports (MPICH 4 ch4:ucx even within one node, Open
 * MPI's `pt2pt` and `ucx` window components, any MPI without hardware atomics between nodes)
 * an operation on a rank completes only when that rank enters MPI. A rank whose JavaScript is
 * awaiting I/O never does, so every rank holding a window pokes MPI's progress engine
 * (`MPI_Iprobe`) from a timer while the window exists: the timer runs whenever the event loop
 * is free, costs about what an empty timer costs, and never keeps the process alive.
 * @module
 */

import { MpiError } from "./errors.ts";
import type { AccumulateOp, Int64Window, RmaBinding } from "./rma_binding.ts";

/** Default interval of the progress poke of {@linkcode WindowCounters}, in ms. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 10;

/** Options of `Comm.allocateCounters`. */
export interface CountersOptions {
  /**
   * Interval of the progress poke in ms (default {@linkcode DEFAULT_PROGRESS_INTERVAL_MS});
   * `0` turns it off. How often a rank whose event loop is free serves the operations other
   * ranks aim at it (one operation may need a few rounds).
   */
  progressIntervalMs?: number;
}

/**
 * `length` atomic int64 counters on each of `ranks` ranks, all 0 at first. Every operation is
 * atomic with respect to every other operation on the same counter, whichever ranks issue
 * them. Operations are awaited: while one waits for its target, this rank's event loop runs on
 * (under MPI it polls `MPI_Testall`, sleeping between polls, never spinning). Values are
 * JavaScript safe integers.
 */
export interface Counters {
  /** Number of ranks (each owns `length` counters). */
  readonly ranks: number;
  /** Counters per rank. */
  readonly length: number;
  /** Adds `value` to counter `index` of `rank`; resolves to the value it had before. */
  fetchAdd(rank: number, index: number, value: number): Promise<number>;
  /** The value of counter `index` of `rank`, read atomically. */
  read(rank: number, index: number): Promise<number>;
  /**
   * Counter `index` of every rank, in rank order. Each value is read atomically; the reads
   * are issued together, so they are not one snapshot of all ranks.
   */
  readAll(index: number): Promise<number[]>;
  /**
   * Collective: every rank calls it once, when no rank will touch the counters again and none
   * of its operations is pending; it returns once all ranks have called it (under MPICH the
   * wait spins: call it when the ranks are known to be done). Any later call throws
   * {@linkcode MpiError}.
   */
  free(): void;
}

function checkSlot(counters: Counters, rank: number, index: number): void {
  if (!Number.isInteger(rank) || rank < 0 || rank >= counters.ranks) {
    throw new RangeError(`counter rank must be an integer in [0, ${counters.ranks}), got ${rank}`);
  }
  if (!Number.isInteger(index) || index < 0 || index >= counters.length) {
    throw new RangeError(
      `counter index must be an integer in [0, ${counters.length}), got ${index}`,
    );
  }
}

function checkValue(value: number): void {
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(`counter value must be a safe integer, got ${value}`);
  }
}

/** Checks the `length` given to `allocateCounters`. */
function checkCountersLength(length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > 2 ** 24) {
    throw new RangeError(`counters per rank must be an integer in [1, 2^24], got ${length}`);
  }
}

/** Checks `options.progressIntervalMs` and returns the interval to use. */
export function progressInterval(options: CountersOptions = {}): number {
  const ms = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`progressIntervalMs must be a number >= 0, got ${ms}`);
  }
  return ms;
}

/** Runs `fn` now; its result or error as a promise, like an async operation's. */
function settled<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error);
  }
}

function freed(): MpiError {
  return new MpiError("shared counters used after free(): allocate new ones");
}

/** The counters of a one-process run: plain memory, same checks and results. */
export class LocalCounters implements Counters {
  /** Always 1. */
  readonly ranks = 1;
  /** Counters per rank. */
  readonly length: number;
  #values: number[] | null;

  /** `length` counters, all 0. */
  constructor(length: number) {
    checkCountersLength(length);
    this.length = length;
    this.#values = new Array<number>(length).fill(0);
  }

  #live(): number[] {
    if (this.#values === null) throw freed();
    return this.#values;
  }

  /** Adds `value` to counter `index`; resolves to its previous value. */
  fetchAdd(rank: number, index: number, value: number): Promise<number> {
    return settled(() => {
      const values = this.#live();
      checkSlot(this, rank, index);
      checkValue(value);
      const before = values[index];
      values[index] = before + value;
      return before;
    });
  }

  /** The value of counter `index`. */
  read(rank: number, index: number): Promise<number> {
    return settled(() => {
      const values = this.#live();
      checkSlot(this, rank, index);
      return values[index];
    });
  }

  /** `[await read(0, index)]`. */
  async readAll(index: number): Promise<number[]> {
    return [await this.read(0, index)];
  }

  /** Releases the counters. */
  free(): void {
    this.#live();
    this.#values = null;
  }
}

/** The counters of an MPI job: one `MPI_Win_allocate` window, in a `lock_all` epoch. */
export class WindowCounters implements Counters {
  /** Number of ranks. */
  readonly ranks: number;
  /** Counters per rank. */
  readonly length: number;
  #window: Int64Window | null;
  #poke: ReturnType<typeof setInterval> | null = null;
  /** Longest sleep between two polls of a pending operation, in ms. */
  readonly #maxPause: number;
  /** Operations started and not yet seen complete. */
  #pending = 0;
  static readonly #NO_ORIGIN = new BigInt64Array(1);

  /**
   * Collective: allocates the window with `rma`, waits on `barrier` until every rank's part is
   * zeroed, and starts the progress poke (unless `progressIntervalMs` is 0).
   */
  constructor(
    rma: RmaBinding,
    ranks: number,
    length: number,
    barrier: () => void,
    options: CountersOptions = {},
  ) {
    checkCountersLength(length);
    const interval = progressInterval(options);
    this.ranks = ranks;
    this.length = length;
    this.#maxPause = interval > 0 ? interval : DEFAULT_PROGRESS_INTERVAL_MS;
    this.#window = rma.allocateInt64(length);
    barrier();
    if (interval > 0) {
      const poke = setInterval(() => rma.poke(), interval);
      Deno.unrefTimer(poke);
      this.#poke = poke;
    }
  }

  #live(): Int64Window {
    if (this.#window === null) throw freed();
    return this.#window;
  }

  /**
   * Starts one accumulate per target in `targets` on counter `index`, then polls
   * `MPI_Testall` (at once, then after sleeps of 1, 2, 4 ... ms up to the poke interval) until
   * all are complete; resolves to the old values.
   */
  async #accumulate(
    targets: readonly number[],
    index: number,
    op: AccumulateOp,
    value: number,
  ): Promise<number[]> {
    const window = this.#live();
    const origin = op === "sum" ? BigInt64Array.of(BigInt(value)) : WindowCounters.#NO_ORIGIN;
    const results = new BigInt64Array(targets.length);
    const requests = window.requests(targets.length);
    targets.forEach((rank, slot) => {
      window.accumulate(origin, results.subarray(slot, slot + 1), rank, index, op, requests, slot);
    });
    this.#pending++;
    try {
      for (let pause = 1; !window.testAll(requests); pause = Math.min(2 * pause, this.#maxPause)) {
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    } finally {
      this.#pending--;
    }
    return Array.from(results, Number);
  }

  /** `MPI_Rget_accumulate(MPI_SUM)` on counter `index` of `rank`, awaited. */
  async fetchAdd(rank: number, index: number, value: number): Promise<number> {
    this.#live();
    checkSlot(this, rank, index);
    checkValue(value);
    return (await this.#accumulate([rank], index, "sum", value))[0];
  }

  /** `MPI_Rget_accumulate(MPI_NO_OP)` on counter `index` of `rank`, awaited. */
  async read(rank: number, index: number): Promise<number> {
    this.#live();
    checkSlot(this, rank, index);
    return (await this.#accumulate([rank], index, "noOp", 0))[0];
  }

  /** One `MPI_Rget_accumulate(MPI_NO_OP)` per rank, awaited together. */
  async readAll(index: number): Promise<number[]> {
    this.#live();
    checkSlot(this, 0, index);
    const ranks = Array.from({ length: this.ranks }, (_, rank) => rank);
    return await this.#accumulate(ranks, index, "noOp", 0);
  }

  /** Stops the poke, then `MPI_Win_unlock_all` and `MPI_Win_free` (collective). */
  free(): void {
    const window = this.#live();
    if (this.#pending > 0) {
      throw new MpiError(
        `shared counters freed with ${this.#pending} operations pending: await them first`,
      );
    }
    if (this.#poke !== null) clearInterval(this.#poke);
    this.#poke = null;
    this.#window = null;
    window.free();
  }
}
