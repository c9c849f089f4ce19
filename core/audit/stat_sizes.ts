/**
 * Sizes of many files by `lstat`, fast: synchronous calls (an asynchronous `lstat` costs
 * several times more per call in Deno), spread over a few worker threads when there are many,
 * so that a parallel file system's per-call latency overlaps.
 * @module
 */

/** {@linkcode statSizes} code of a path where nothing is. */
export const NOTHING = -1;
/** {@linkcode statSizes} code of a path that is not a regular file. */
export const NOT_A_FILE = -2;
/** {@linkcode statSizes} code of a path that could not be looked at. */
export const UNREADABLE = -3;

/** The size of each path (`lstat`, links not followed), or one of the negative codes. */
export function statSizesSync(paths: readonly string[]): Float64Array<ArrayBuffer> {
  const out = new Float64Array(paths.length);
  for (let i = 0; i < paths.length; i++) {
    try {
      const info = Deno.lstatSync(paths[i]);
      out[i] = info.isFile ? info.size : NOT_A_FILE;
    } catch (err) {
      out[i] = err instanceof Deno.errors.NotFound ? NOTHING : UNREADABLE;
    }
  }
  return out;
}

/** Paths per worker below which the calling thread does the work itself. */
const PER_WORKER = 4096;

/**
 * {@linkcode statSizesSync} of `paths`, on up to `workers` threads (the calling thread alone
 * for a short list).
 */
export async function statSizes(paths: readonly string[], workers = 4): Promise<Float64Array> {
  const n = Math.min(workers, Math.floor(paths.length / PER_WORKER));
  if (n <= 1) return statSizesSync(paths);
  const per = Math.ceil(paths.length / n);
  const parts = await Promise.all(
    Array.from({ length: n }, (_, k) =>
      new Promise<Float64Array>((resolve, reject) => {
        const worker = new Worker(new URL("./stat_sizes_worker.ts", import.meta.url).href, {
          type: "module",
        });
        worker.onmessage = (e: MessageEvent<Float64Array>) => {
          worker.terminate();
          resolve(e.data);
        };
        worker.onerror = (e) => {
          e.preventDefault();
          worker.terminate();
          reject(new Error(`stat worker: ${e.message}`));
        };
        worker.postMessage(paths.slice(k * per, (k + 1) * per));
      })),
  );
  const out = new Float64Array(paths.length);
  parts.forEach((part, k) => out.set(part, k * per));
  return out;
}
