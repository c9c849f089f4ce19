/**
 * The rank's worker loop: a fixed number of workers take items one at a time from an awaited
 * source (the run's queue, shared with the other ranks), until it has none left or the run must
 * stop (the Slurm time budget). The stop is decided before an item is taken, never after: an
 * item taken is always worked (no other rank can take it any more), items in hand are finished,
 * and items never taken stay for the next run. Workers take in turn, one at a time: each waits
 * for `room` (the rank has little enough in hand), then for the budget check, then takes.
 * @module
 */

/** Options of {@linkcode runWorkers}. */
export interface WorkerLoopOptions<T> {
  /** The next item, or `null` when none is left (every later call returns `null` too). */
  take: () => Promise<T | null>;
  /** Workers running side by side (at least 1). */
  workers: number;
  /** Does one item; `worker` is the index (0-based) of the worker that took it. */
  work: (item: T, worker: number) => Promise<void>;
  /** Asked right before an item is taken: true stops every worker from taking another. */
  mustStop: () => boolean;
  /** Called once, when the first worker stops for `mustStop`. */
  onStop?: () => void;
  /**
   * Resolves when the worker whose turn it is may take another item (default: at once); the
   * other workers wait for their turn meanwhile.
   */
  room?: () => Promise<void>;
  /** Runs before a worker asks for an item, before `mustStop` (a test hook). */
  beforeTake?: () => Promise<void> | void;
  /** Runs when an item is taken, before it is worked (a test hook). */
  beforeItem?: (item: T) => Promise<void> | void;
}

/** What {@linkcode runWorkers} did. */
export interface WorkerLoopResult {
  /** True when `mustStop` stopped the loop before `take` ran dry. */
  stopped: boolean;
}

/** Runs the workers until `take` has nothing left or `mustStop` says so. */
export async function runWorkers<T>(options: WorkerLoopOptions<T>): Promise<WorkerLoopResult> {
  let stopped = false;
  let dry = false;
  /** The turn of the worker taking now: the next one waits for it. */
  let turn: Promise<unknown> = Promise.resolve();
  /** Waits for this worker's turn, then for room and the budget; the item, or null to end. */
  const next = (): Promise<T | null> => {
    const mine = turn.then(async () => {
      if (stopped || dry) return null;
      await options.room?.();
      if (stopped || dry) return null;
      if (options.mustStop()) {
        stopped = true;
        options.onStop?.();
        return null;
      }
      const item = await options.take();
      if (item === null) dry = true;
      return item;
    });
    turn = mine.catch(() => {});
    return mine;
  };
  const worker = async (index: number) => {
    while (!stopped && !dry) {
      await options.beforeTake?.();
      const item = await next();
      if (item === null) return;
      await options.beforeItem?.(item);
      await options.work(item, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.workers) }, (_, i) => worker(i)));
  return { stopped };
}
