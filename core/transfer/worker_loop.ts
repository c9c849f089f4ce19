/**
 * The rank's worker loop: a fixed number of workers take items one at a time from an awaited
 * source (the run's queue, shared with the other ranks), until it has none left or the run must
 * stop (the Slurm time budget). The stop is decided before an item is taken, never after: an
 * item taken is always worked (no other rank can take it any more), items in hand are finished,
 * and items never taken stay for the next run.
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
  const worker = async (index: number) => {
    while (!stopped && !dry) {
      await options.beforeTake?.();
      if (stopped || dry) return;
      if (options.mustStop()) {
        stopped = true;
        options.onStop?.();
        return;
      }
      const item = await options.take();
      if (item === null) {
        dry = true;
        return;
      }
      await options.beforeItem?.(item);
      await options.work(item, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.workers) }, (_, i) => worker(i)));
  return { stopped };
}
