/**
 * The rank's worker loop: a fixed number of workers take items from one queue, each one at a
 * time, until the queue is empty or the run must stop (the Slurm time budget). The stop is
 * decided right before an item would start, so no item is ever started after it; items in
 * hand are finished.
 * @module
 */

/** Options of {@linkcode runWorkers}. */
export interface WorkerLoopOptions<T> {
  /** The items, taken from the front; an item taken but not started is put back. */
  queue: T[];
  /** Workers running side by side (at least 1). */
  workers: number;
  /** Does one item; `worker` is the index (0-based) of the worker that took it. */
  work: (item: T, worker: number) => Promise<void>;
  /** Asked right before an item starts: true stops every worker from starting another. */
  mustStop: () => boolean;
  /** Called once, when the first worker stops, with the items not started. */
  onStop?: (left: number) => void;
  /** Runs when an item is taken, before it starts (a test hook). */
  beforeItem?: (item: T) => Promise<void> | void;
}

/** What {@linkcode runWorkers} did. */
export interface WorkerLoopResult {
  /** True when `mustStop` stopped the loop before the queue was empty. */
  stopped: boolean;
  /** Items never started (left in the queue). */
  left: number;
}

/** Runs the workers until the queue is empty or `mustStop` says so; returns what is left. */
export async function runWorkers<T>(options: WorkerLoopOptions<T>): Promise<WorkerLoopResult> {
  const { queue } = options;
  let stopped = false;
  const worker = async (index: number) => {
    while (queue.length > 0 && !stopped) {
      const item = queue.shift()!;
      await options.beforeItem?.(item);
      if (stopped || options.mustStop()) {
        queue.unshift(item);
        if (!stopped) {
          stopped = true;
          options.onStop?.(queue.length);
        }
        return;
      }
      await options.work(item, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.workers) }, (_, i) => worker(i)));
  return { stopped, left: queue.length };
}
