/**
 * The test side of the run driver (`tests/fixtures/run_driver.ts`): a gate folder where paused
 * ranks say so, waiting for them, and letting them go.
 * @module
 */

import { join } from "node:path";
import { REPO } from "./fixture.ts";
import { cleanEnv, launcherArgs, type MpiImpl } from "./mpi_launch.ts";
import { sleep } from "./sleep.ts";

/** The run driver, relative to the repository: same command line as `phases/run.ts`. */
export const RUN_DRIVER = "tests/fixtures/run_driver.ts";

/** Creates an empty gate folder. */
export async function makeGate(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "dt-gate-" });
}

/**
 * Waits until every rank of `ranks` has paused at `gate`; returns each one's pid. Fails when
 * `running()` says the run ended first, or after `timeoutMs`.
 */
export async function waitPaused(
  gate: string,
  ranks: readonly number[],
  running: () => boolean,
  timeoutMs = 60_000,
): Promise<Map<number, number>> {
  const until = Date.now() + timeoutMs;
  const pids = new Map<number, number>();
  while (pids.size < ranks.length) {
    for (const rank of ranks) {
      if (pids.has(rank)) continue;
      const text = await Deno.readTextFile(join(gate, `paused.${rank}`)).catch(() => "");
      if (/^\d+$/.test(text)) pids.set(rank, Number(text));
    }
    if (pids.size === ranks.length) break;
    if (!running()) throw new Error(`the run ended before ranks ${ranks} paused at ${gate}`);
    if (Date.now() > until) throw new Error(`ranks ${ranks} did not pause within ${timeoutMs} ms`);
    await sleep(20);
  }
  return pids;
}

/** Lets every paused rank go on. */
export async function openGate(gate: string): Promise<void> {
  await Deno.writeTextFile(join(gate, "go"), "");
}

/** A run of the driver started in the background under a launcher. */
export interface DriverJob {
  /** The launcher's exit status, once it ends. */
  status: Promise<Deno.CommandStatus>;
  /** Whether the launcher is still running. */
  running(): boolean;
}

/**
 * Starts the run driver under `impl`'s launcher with `n` ranks and `args` (the driver's flags
 * and `run`'s), in the background with its output discarded, for a test that pauses a rank at
 * a gate and then acts on it (kills it, fills its disk).
 */
export function spawnDriver(impl: MpiImpl, n: number, args: string[]): DriverJob {
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `exec "$@"`,
      "sh",
      ...launcherArgs(impl, n, [Deno.execPath(), "run", "-A", join(REPO, RUN_DRIVER), ...args]),
    ],
    env: cleanEnv(),
    clearEnv: true,
    stdout: "null",
    stderr: "null",
  }).spawn();
  let ended = false;
  const status = child.status.then((s) => (ended = true, s));
  return { status, running: () => !ended };
}
