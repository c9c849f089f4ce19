/**
 * A work queue shared by all ranks, with no manager rank: each rank starts on its own list and,
 * once that is done, takes the files another rank has not started yet, preferring the rank with
 * the most bytes left. Built on one-sided MPI counters ({@linkcode Counters}): rank r's counter
 * is the number of items of rank r's list handed out so far, and every hand-out is one atomic
 * fetch-and-add on it, so no owner has to answer.
 *
 * Exactly once, whatever the timing: item i of list r is handed out by the one `take()` whose
 * fetch-and-add on counter r returned i (an atomic fetch-and-add returns each value once), and a
 * `take()` that got an index inside the list always returns that item. `take()` returns `null`
 * only after it has seen every counter at or past the end of its list, and counters never go
 * down, so by then every item has been handed out. A rank that dies after a `take()` loses that
 * item for this run only: the runner's logs make the next run redo it.
 *
 * Cost: one fetch-and-add on the rank's own counter per own item; a steal reads every counter
 * (issued and awaited together) then adds to the victim's, once more per victim found empty, so
 * a `take()` ends after at most `size` rounds. Nothing spins: while an operation waits for its
 * target (see `Counters` on progress), the rank's event loop, and its other copies, go on.
 * @module
 */

import { createHash } from "node:crypto";
import type { Comm, Counters, CountersOptions } from "../../mpi/mod.ts";
import { UserError } from "../errors.ts";

/** What {@linkcode WorkQueue.open} needs to know about an item. */
export interface WorkQueueOptions<T> extends CountersOptions {
  /** The item's size in bytes (>= 0): steals prefer the rank with the most bytes left. */
  sizeOf(item: T): number;
  /** A text that identifies the item, for the check that every rank has the same lists. */
  keyOf(item: T): string;
}

/** One item handed out by {@linkcode WorkQueue.take}. */
export interface Taken<T> {
  /** The item. */
  readonly item: T;
  /** The rank whose list it came from (another rank's: it was taken over). */
  readonly from: number;
  /** Its position in that list. */
  readonly index: number;
}

/**
 * The ranks did not build the same lists, so the queue could hand a file out twice: the ranks
 * read different schedules or logs (another run or phase writing them). Exit code 2: the run
 * copies nothing and says to run again once the other writer has ended.
 */
export class WorkListMismatchError extends UserError {}

/** How much of one rank's list is left. */
export interface Left {
  /** Bytes of the items not handed out yet. */
  readonly bytes: number;
  /** Items not handed out yet. */
  readonly items: number;
}

/**
 * The rank to take from: the one with the most bytes left, then the most items left (so that
 * empty files are still taken), then the lowest rank; `null` when nothing is left anywhere.
 */
export function pickVictim(left: readonly Left[]): number | null {
  let best: number | null = null;
  for (let rank = 0; rank < left.length; rank++) {
    const { bytes, items } = left[rank];
    if (items <= 0) continue;
    if (best === null) best = rank;
    else if (bytes > left[best].bytes || (bytes === left[best].bytes && items > left[best].items)) {
      best = rank;
    }
  }
  return best;
}

/** A digest of the lists as a number below 2^48 (exact in a double, for `allreduce`). */
function fingerprint<T>(lists: readonly (readonly T[])[], options: WorkQueueOptions<T>): number {
  const hash = createHash("sha256");
  lists.forEach((list, rank) => {
    hash.update(`rank ${rank}: ${list.length}\n`);
    for (const item of list) hash.update(`${options.keyOf(item)}\0${options.sizeOf(item)}\n`);
  });
  return hash.digest().readUIntBE(0, 6);
}

/**
 * The shared queue. Open it on every rank with the same lists (collective), call
 * {@linkcode WorkQueue.take} until it resolves to `null`, then {@linkcode WorkQueue.free} on
 * every rank (collective) once no `take()` is pending. A rank's concurrent workers may share
 * one queue: each `take()` claims with its own fetch-and-add.
 */
export class WorkQueue<T> {
  /** The calling rank. */
  readonly rank: number;
  readonly #lists: readonly (readonly T[])[];
  /** `#suffixBytes[r][i]`: bytes of list r from item i on. */
  readonly #suffixBytes: number[][];
  readonly #counters: Counters;
  /** Ranks whose counter was seen at or past the end of their list. */
  readonly #exhausted: boolean[];
  #freed = false;

  private constructor(
    rank: number,
    lists: readonly (readonly T[])[],
    suffixBytes: number[][],
    counters: Counters,
  ) {
    this.rank = rank;
    this.#lists = lists;
    this.#suffixBytes = suffixBytes;
    this.#counters = counters;
    this.#exhausted = lists.map((list) => list.length === 0);
  }

  /**
   * Collective: opens the queue over `lists` (one list per rank of `comm`, each in the order
   * its rank should work, usually largest first), which every rank must build identically.
   *
   * @throws {RangeError} when there is not one list per rank or a size is not a number >= 0.
   * @throws {WorkListMismatchError} when the ranks' lists differ (checked with a digest).
   */
  static open<T>(
    comm: Comm,
    lists: readonly (readonly T[])[],
    options: WorkQueueOptions<T>,
  ): WorkQueue<T> {
    if (lists.length !== comm.size) {
      throw new RangeError(`work queue needs one list per rank: ${comm.size}, got ${lists.length}`);
    }
    const suffixBytes = lists.map((list, rank) => {
      const suffix = new Array<number>(list.length + 1).fill(0);
      for (let i = list.length - 1; i >= 0; i--) {
        const size = options.sizeOf(list[i]);
        if (!Number.isFinite(size) || size < 0) {
          throw new RangeError(`work queue: item ${i} of rank ${rank} has size ${size}`);
        }
        suffix[i] = suffix[i + 1] + size;
      }
      return suffix;
    });
    const digest = fingerprint(lists, options);
    const low = comm.allreduce(digest, "min");
    const high = comm.allreduce(digest, "max");
    if (low !== high) {
      throw new WorkListMismatchError(
        `rank ${comm.rank}: the ranks built different work lists (digests ${low} to ${high}; ` +
          `this rank ${digest}): every rank must plan from the same schedule and logs. Is ` +
          "another run of this tool writing them? Run again once it has ended.",
      );
    }
    const counters = comm.allocateCounters(1, options);
    return new WorkQueue(comm.rank, lists, suffixBytes, counters);
  }

  /**
   * The next item for this rank: the next of its own list; once that is done, the next
   * unstarted item of the rank with the most bytes left; `null` when no item is left unstarted
   * anywhere (every later call resolves to `null` too). Several calls of one rank may be
   * pending at once (one per worker).
   */
  async take(): Promise<Taken<T> | null> {
    if (this.#freed) throw new Error("work queue used after free(): open a new one");
    if (!this.#exhausted[this.rank]) {
      const got = await this.#claim(this.rank);
      if (got !== null) return got;
    }
    while (!this.#exhausted.every(Boolean)) {
      const next = await this.#counters.readAll(0);
      const left = this.#lists.map((list, rank): Left => {
        if (next[rank] >= list.length) this.#exhausted[rank] = true;
        return this.#exhausted[rank]
          ? { bytes: 0, items: 0 }
          : { bytes: this.#suffixBytes[rank][next[rank]], items: list.length - next[rank] };
      });
      const victim = pickVictim(left);
      if (victim === null) return null;
      const got = await this.#claim(victim);
      if (got !== null) return got;
    }
    return null;
  }

  /** Fetch-and-adds `rank`'s counter: its item at the old value, or `null` past the end. */
  async #claim(rank: number): Promise<Taken<T> | null> {
    const list = this.#lists[rank];
    const index = await this.#counters.fetchAdd(rank, 0, 1);
    if (index < list.length) return { item: list[index], from: rank, index };
    this.#exhausted[rank] = true;
    return null;
  }

  /**
   * Items of this rank's own list not handed out yet (one atomic read of its counter): once
   * every rank has stopped taking, the items that stay for the next run.
   */
  async left(): Promise<number> {
    if (this.#freed) throw new Error("work queue used after free(): open a new one");
    const next = await this.#counters.read(this.rank, 0);
    return Math.max(0, this.#lists[this.rank].length - next);
  }

  /**
   * Collective: releases the counters. Every rank calls it once, after its last `take()` has
   * settled; it returns when all have (call it once the ranks are known to be done: MPICH
   * spins while it waits).
   */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#counters.free();
  }
}
