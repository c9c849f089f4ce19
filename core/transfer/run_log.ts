/**
 * A rank's log of a run, `logs/run_rank<r>_<writer token>.log`: every line with its time and
 * rank. Each call says whether the line is for the user too: `notice` lines (a failed file,
 * the time-budget stop, a temporary kept for a live writer) also go to standard error as
 * `[rank r/size] line`; `info` lines stay in the file.
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { writeAll } from "../io/write_all.ts";
import { toolPaths } from "../layout.ts";

/** Path of a rank's log in the tool's `logs/` folder. */
export function rankLogPath(config: Config, rank: number, token: string): string {
  return join(toolPaths(config).logs, `run_rank${rank}_${token}.log`);
}

/** Where a rank's run writes its lines. */
export interface RunLog {
  /** A line for the log file only. */
  info(line: string): void;
  /** A line for the log file and the user (standard error). */
  notice(line: string): void;
}

/** The log file of one rank; lines are appended in call order. */
export class RankLog implements RunLog {
  readonly #file: Deno.FsFile;
  readonly #rank: number;
  readonly #size: number;
  readonly #encoder = new TextEncoder();
  #tail: Promise<void> = Promise.resolve();
  #error: { cause: unknown } | undefined;

  private constructor(file: Deno.FsFile, rank: number, size: number) {
    this.#file = file;
    this.#rank = rank;
    this.#size = size;
  }

  /** Opens (appends to) the log at `path` of `rank` among `size` ranks. */
  static async open(path: string, rank: number, size: number): Promise<RankLog> {
    const file = await Deno.open(path, { create: true, append: true });
    return new RankLog(file, rank, size);
  }

  /** Appends a line to the file. */
  info = (line: string): void => {
    const text = `${new Date().toISOString()} [rank ${this.#rank}] ${line}\n`;
    const bytes = this.#encoder.encode(text);
    this.#tail = this.#tail.then(() => writeAll(this.#file, bytes)).catch((cause) => {
      this.#error ??= { cause };
    });
  };

  /** Appends a line to the file and prints it on standard error. */
  notice = (line: string): void => {
    this.info(line);
    console.error(`[rank ${this.#rank}/${this.#size}] ${line}`);
  };

  /** Writes what is pending and closes the file; throws the first write error, if any. */
  async close(): Promise<void> {
    await this.#tail;
    this.#file.close();
    if (this.#error !== undefined) throw this.#error.cause;
  }
}
