/**
 * Rank 0's side of the progress: adds up every rank's snapshot and shows one line.
 *
 * The line is redrawn in place (`\r` and erase-line) only when this very process writes to a
 * terminal: one process started without an MPI launcher, its standard output a terminal. Under
 * `mpirun` or `srun` the rank's output is relayed by the launcher (through a pipe under MPICH
 * and Slurm, through a pseudo-terminal under Open MPI even when the launcher's own output goes
 * to a file), so a rank cannot know where its bytes end up: it prints a plain line every
 * `progress_interval_seconds`, which reads well in a terminal and in a log file alike.
 * @module
 */

import { detectLauncher, type Env } from "../../mpi/mod.ts";
import { progressLine, readProgress } from "./progress.ts";

/** How often the live line is redrawn, in ms. */
const LIVE_INTERVAL_MS = 1000;

/** `live`: one line redrawn in place; `lines`: a plain line at each interval. */
export type ProgressStyle = "live" | "lines";

/**
 * The style for a process with environment `env` whose standard output is (`stdoutIsTerminal`)
 * or is not a terminal: `live` only without an MPI launcher in between.
 */
export function progressStyle(env: Env, stdoutIsTerminal: boolean): ProgressStyle {
  return stdoutIsTerminal && detectLauncher(env) === null ? "live" : "lines";
}

/** Options of {@linkcode ProgressDisplay}. */
export interface ProgressDisplayOptions {
  /** The tool's `logs/` folder, where the ranks' snapshots are. */
  logs: string;
  /** Ranks of the run. */
  size: number;
  /** How to show the line. */
  style: ProgressStyle;
  /** Interval of plain lines, in ms (the live line is redrawn every second). */
  intervalMs: number;
  /** Writes text to standard output as it is (default: `Deno.stdout`). */
  write?: (text: string) => void;
}

/** Shows the progress of all ranks until stopped. */
export class ProgressDisplay {
  readonly #options: ProgressDisplayOptions;
  readonly #write: (text: string) => void;
  #timer: ReturnType<typeof setInterval> | undefined;
  #drawn = false;
  #busy = false;

  /** Prepares the display; nothing is shown before {@linkcode ProgressDisplay.start}. */
  constructor(options: ProgressDisplayOptions) {
    this.#options = options;
    const encoder = new TextEncoder();
    this.#write = options.write ?? ((text) => Deno.stdout.writeSync(encoder.encode(text)));
  }

  /** Starts showing the line at its interval. */
  start(): this {
    const { style, intervalMs } = this.#options;
    this.#timer = setInterval(() => this.#show(), style === "live" ? LIVE_INTERVAL_MS : intervalMs);
    return this;
  }

  /** Stops; ends a live line with a line break. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#drawn && this.#options.style === "live") this.#write("\n");
    this.#drawn = false;
  }

  async #show(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const all = await readProgress(this.#options.logs, this.#options.size);
      if (all.length === 0 || this.#timer === undefined) return;
      const line = progressLine(all, Date.now());
      if (this.#options.style === "live") this.#write(`\r\x1b[K${line}`);
      else this.#write(`${line}\n`);
      this.#drawn = true;
    } finally {
      this.#busy = false;
    }
  }
}
