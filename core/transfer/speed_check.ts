/**
 * Whether this rank copies about as fast as the fastest rank, learnt once, early in the run,
 * without pausing the copy. When ranks balance at run time, a rank holds little at first (a
 * file it holds cannot go to a faster rank); that costs MD5 lanes, so a rank that turns out to
 * be as fast as the others may then hold as many files as it has workers. Once the rank has
 * copied its sample, or copied for {@linkcode SAMPLE_MS} (a slow rank must not keep the others
 * waiting for the verdict), or stopped copying, it posts its rate to a nonblocking
 * max-reduction over every rank and goes on copying; when every rank has posted, a rank whose rate is at least
 * {@linkcode FAST_SHARE} of the fastest rank's is fast. A slow rank holds less still, in
 * proportion to its speed ({@linkcode holdingLimit}), so that what it holds when the others run
 * out of files to take is what it copies in about the time they took for theirs.
 * @module
 */

/** A rank at least this share of the fastest rank's rate counts as fast. */
export const FAST_SHARE = 0.5;

/** The longest a rank copies before it posts its rate, in ms. */
export const SAMPLE_MS = 1500;

/** The outcome of the check, the same inputs on every rank. */
export interface SpeedVerdict {
  /** This rank's rate over its sample, bytes per second. */
  bytesPerSecond: number;
  /** The fastest rank's rate, bytes per second. */
  fastestBytesPerSecond: number;
  /** True when this rank's rate is at least {@linkcode FAST_SHARE} of the fastest. */
  fast: boolean;
}

/**
 * The bytes a rank may hold after the check: no bound for a fast rank; for a slow one `narrow`
 * (what it held before) scaled by its share of the fastest rate (at least one byte: a rank with
 * nothing in hand always takes one file).
 */
export function holdingLimit(verdict: SpeedVerdict, narrow: number): number {
  if (verdict.fast) return Infinity;
  const share = verdict.fastestBytesPerSecond > 0
    ? verdict.bytesPerSecond / verdict.fastestBytesPerSecond
    : 0;
  return Math.max(1, Math.floor(narrow * share));
}

/** A reduction in flight (a `ValueRequest` of `Comm.iallreduce`). */
export interface PendingMax {
  /** Resolves once every rank has posted (without spinning a core). */
  wait(): Promise<void>;
  /** The largest value posted, once `wait()` resolved. */
  value(): number;
}

/** Options of {@linkcode SpeedCheck}. */
export interface SpeedCheckOptions {
  /** Bytes the rank copies before it posts its rate. */
  sampleBytes: number;
  /** Or the ms it copies before it posts its rate, whichever comes first (default `SAMPLE_MS`). */
  sampleMs?: number;
  /** Starts the max-reduction of this rank's rate over every rank (collective, once). */
  postRate: (bytesPerSecond: number) => PendingMax;
  /** Receives the verdict once every rank has posted. */
  onVerdict: (verdict: SpeedVerdict) => void;
  /** Epoch ms now. */
  now: () => number;
}

/** The rank's side of the check: count bytes with `copied`, end with `finish`. */
export class SpeedCheck {
  readonly #options: SpeedCheckOptions;
  readonly #started: number;
  #copied = 0;
  #posted: Promise<void> | null = null;

  /** Starts the clock of the sample. */
  constructor(options: SpeedCheckOptions) {
    this.#options = options;
    this.#started = options.now();
  }

  /** Counts `bytes` more copied; posts the rate once the sample's bytes or time is reached. */
  copied(bytes: number): void {
    this.#copied += bytes;
    if (this.#posted !== null) return;
    const o = this.#options;
    if (this.#copied >= o.sampleBytes || o.now() - this.#started >= (o.sampleMs ?? SAMPLE_MS)) {
      this.#post();
    }
  }

  /**
   * Posts the rate now if the sample was never reached (the rank has stopped copying), and
   * resolves once the verdict is in: call it on every rank before the run's final barrier.
   */
  async finish(): Promise<void> {
    if (this.#posted === null) this.#post();
    await this.#posted;
  }

  #post(): void {
    const seconds = (this.#options.now() - this.#started) / 1000;
    const bytesPerSecond = seconds > 0 ? this.#copied / seconds : 0;
    const pending = this.#options.postRate(bytesPerSecond);
    const posted = pending.wait().then(() => {
      const fastestBytesPerSecond = pending.value();
      this.#options.onVerdict({
        bytesPerSecond,
        fastestBytesPerSecond,
        fast: bytesPerSecond >= FAST_SHARE * fastestBytesPerSecond,
      });
    });
    posted.catch(() => {}); // rethrown by finish(), not lost before it is awaited
    this.#posted = posted;
  }
}
