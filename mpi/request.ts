/**
 * Requests of nonblocking collectives, and waiting on them without holding a core.
 *
 * MPICH and Open MPI poll in a busy loop inside a blocking collective, so a rank that has
 * finished its work and waits there for the others takes a whole core from the ranks still
 * working. {@linkcode Request.wait} instead tests the request (`MPI_Test`, which also moves
 * MPI's progress along) and sleeps on a timer between tests, doubling the sleep from 1 ms up to
 * `maxSleepMs`: the waiting rank costs next to no CPU, and Deno's event loop stays free, so the
 * rank's timers and I/O keep running while it waits.
 * @module
 */

import { MpiError } from "./errors.ts";

/** Default longest sleep between two tests of a request, in ms. */
const DEFAULT_MAX_SLEEP_MS = 20;

/** Options of {@linkcode Request.wait}. */
export interface WaitOptions {
  /** Longest sleep between two tests, in ms (default 20). */
  maxSleepMs?: number;
}

/** A nonblocking operation in flight (mpi4py's `Request`). */
export interface Request {
  /** True once the operation has completed (`MPI_Test`); never blocks. */
  test(): boolean;
  /** Resolves once the operation has completed, testing it and sleeping in between. */
  wait(options?: WaitOptions): Promise<void>;
}

/** A {@linkcode Request} completed when `probe` first returns true (`probe` runs until then). */
export class PolledRequest implements Request {
  readonly #probe: () => boolean;
  #done = false;

  /** Wraps `probe`, a non-blocking test of the operation (called until it returns true). */
  constructor(probe: () => boolean) {
    this.#probe = probe;
  }

  /** True once the operation has completed. */
  test(): boolean {
    if (!this.#done) this.#done = this.#probe();
    return this.#done;
  }

  /** Tests, then sleeps 1, 2, 4, ... up to `maxSleepMs` ms between tests until completed. */
  async wait(options: WaitOptions = {}): Promise<void> {
    const max = options.maxSleepMs ?? DEFAULT_MAX_SLEEP_MS;
    if (!(max >= 1)) throw new RangeError(`maxSleepMs must be at least 1, got ${max}`);
    let sleep = 1;
    while (!this.test()) {
      await new Promise((resolve) => setTimeout(resolve, sleep));
      sleep = Math.min(sleep * 2, max);
    }
  }
}

/** A {@linkcode Request} whose operation yields one number (an `MPI_Iallreduce`). */
export interface ValueRequest extends Request {
  /** The result, once `test()` returned true or `wait()` resolved; throws `MpiError` before. */
  value(): number;
}

/** A {@linkcode ValueRequest} completed when `probe` first returns true; `read` gives the value. */
export class PolledValueRequest extends PolledRequest implements ValueRequest {
  readonly #read: () => number;

  /** Wraps `probe` (as {@linkcode PolledRequest}) and `read`, which reads the result. */
  constructor(probe: () => boolean, read: () => number) {
    super(probe);
    this.#read = read;
  }

  /** The result; throws `MpiError` while the operation is still in flight. */
  value(): number {
    if (!this.test()) throw new MpiError("value() of a request that has not completed yet");
    return this.#read();
  }
}
