/**
 * Shared counters: a few atomic int64 per rank that any rank can read or add to without the
 * owner taking part, like mpi4py's `MPI.Win.Allocate` used with `Fetch_and_op`. Under MPI they
 * live in a one-sided window ({@linkcode WindowCounters}); in a single process, in memory
 * ({@linkcode LocalCounters}), with the same behaviour.
 *
 * Passive-target progress: with some transports (Open MPI's `pt2pt` and `rdma` window
 * components, MPICH between nodes without hardware atomics) an operation on a rank completes
 * only when that rank enters MPI. A rank whose JavaScript is awaiting I/O never does, so every
 * rank holding a window pokes MPI's progress engine (`MPI_Iprobe`) from a timer while the window
 * exists: the timer runs only when the event loop is free, costs one cheap call per interval,
 * and never keeps the process alive.
 * @module
 */

import { MpiError } from "./errors.ts";
import type { Int64Window, RmaBinding } from "./rma_binding.ts";

/** Default interval of the progress poke of {@linkcode WindowCounters}, in ms. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 5;

/** Options of `Comm.allocateCounters`. */
export interface CountersOptions {
  /**
   * Interval of the progress poke in ms (default {@linkcode DEFAULT_PROGRESS_INTERVAL_MS});
   * `0` turns it off. The longest an operation on a rank whose event loop is free may wait
   * for that rank.
   */
  progressIntervalMs?: number;
}

/**
 * `length` atomic int64 counters on each of `ranks` ranks, all 0 at first. Every operation is
 * atomic with respect to every other operation on the same counter, whichever ranks issue
 * them, and completes before it returns. Values are JavaScript safe integers.
 */
export interface Counters {
  /** Number of ranks (each owns `length` counters). */
  readonly ranks: number;
  /** Counters per rank. */
  readonly length: number;
  /** Adds `value` to counter `index` of `rank` and returns the value it had before. */
  fetchAdd(rank: number, index: number, value: number): number;
  /** The value of counter `index` of `rank`, read atomically. */
  read(rank: number, index: number): number;
  /**
   * Counter `index` of every rank, in rank order. Each value is read atomically; the reads
   * are issued together, so they are not one snapshot of all ranks.
   */
  readAll(index: number): number[];
  /**
   * Collective: every rank calls it once, when no rank will touch the counters again; it
   * returns once all have (under MPICH the wait spins: call it when the ranks are known to be
   * done). Any later call throws {@linkcode MpiError}.
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
export function checkCountersLength(length: number): void {
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

  /** Adds `value` to counter `index` and returns its previous value. */
  fetchAdd(rank: number, index: number, value: number): number {
    const values = this.#live();
    checkSlot(this, rank, index);
    checkValue(value);
    const before = values[index];
    values[index] = before + value;
    return before;
  }

  /** The value of counter `index`. */
  read(rank: number, index: number): number {
    const values = this.#live();
    checkSlot(this, rank, index);
    return values[index];
  }

  /** `[read(0, index)]`. */
  readAll(index: number): number[] {
    return [this.read(0, index)];
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
  readonly #origin = new BigInt64Array(1);
  readonly #result = new BigInt64Array(1);

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

  /** `MPI_Fetch_and_op(MPI_SUM)` then `MPI_Win_flush(rank)`. */
  fetchAdd(rank: number, index: number, value: number): number {
    const window = this.#live();
    checkSlot(this, rank, index);
    checkValue(value);
    this.#origin[0] = BigInt(value);
    window.fetchAndOp(this.#origin, this.#result, rank, index, "sum");
    window.flush(rank);
    return Number(this.#result[0]);
  }

  /** `MPI_Fetch_and_op(MPI_NO_OP)` then `MPI_Win_flush(rank)`. */
  read(rank: number, index: number): number {
    const window = this.#live();
    checkSlot(this, rank, index);
    window.fetchAndOp(this.#origin, this.#result, rank, index, "noOp");
    window.flush(rank);
    return Number(this.#result[0]);
  }

  /** One `MPI_Fetch_and_op(MPI_NO_OP)` per rank, then one `MPI_Win_flush_all`. */
  readAll(index: number): number[] {
    const window = this.#live();
    checkSlot(this, 0, index);
    const results = new BigInt64Array(this.ranks);
    for (let rank = 0; rank < this.ranks; rank++) {
      window.fetchAndOp(this.#origin, results.subarray(rank, rank + 1), rank, index, "noOp");
    }
    window.flushAll();
    return Array.from(results, Number);
  }

  /** Stops the poke, then `MPI_Win_unlock_all` and `MPI_Win_free` (collective). */
  free(): void {
    const window = this.#live();
    if (this.#poke !== null) clearInterval(this.#poke);
    this.#poke = null;
    this.#window = null;
    window.free();
  }
}
