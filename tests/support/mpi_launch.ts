/**
 * Starting entry points under the real MPI launchers of both implementations. A missing
 * launcher fails the test (with the package to install); it never skips.
 * @module
 */

import { join } from "node:path";
import { REPO } from "./fixture.ts";
import type { RunResult } from "./fixture.ts";
import { runCommandOrFail } from "./command.ts";

/** The two MPI implementations the tests cover. */
export type MpiImpl = "mpich" | "openmpi";

/** Both implementations, for test loops. */
export const MPI_IMPLS: readonly MpiImpl[] = ["mpich", "openmpi"];

const INSTALL: Record<MpiImpl, string> = {
  mpich: "apt-get install mpich",
  openmpi: "apt-get install openmpi-bin",
};

const LAUNCHER_VARS = /^(OMPI_|PMI_|PMIX_|SLURM_|HYDI_|HYDRA_|MPIR_CVAR_|MV2_|I_MPI_|DT_MPI_)/;

/** The environment without anything that looks like an MPI launcher or a Slurm job. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !LAUNCHER_VARS.test(name)),
  );
  return { ...env, NO_COLOR: "1", ...extra };
}

/** The command line that starts `n` ranks of `argv` under `impl`'s launcher. */
export function launcherArgs(impl: MpiImpl, n: number, argv: string[]): string[] {
  if (impl === "mpich") return ["mpirun.mpich", "-n", String(n), ...argv];
  const root = Deno.uid() === 0 ? ["--allow-run-as-root"] : [];
  return ["mpirun.openmpi", ...root, "--oversubscribe", "-n", String(n), ...argv];
}

/** Options of {@linkcode mpirun}. */
export interface MpirunOptions {
  /** Extra environment. */
  env?: Record<string, string>;
  /** Kill the launcher after this many ms (default 120 s) and fail. */
  timeoutMs?: number;
  /** Wrap each rank's command (e.g. `setpriv ...`). */
  wrap?: string[];
}

/** Starts `n` ranks of `deno run -A <repo>/<script> ...args` under `impl` and waits. */
export async function mpirun(
  impl: MpiImpl,
  n: number,
  script: string,
  args: string[],
  options: MpirunOptions = {},
): Promise<RunResult> {
  const argv = [...(options.wrap ?? []), Deno.execPath(), "run", "-A", join(REPO, script), ...args];
  const [cmd, ...rest] = launcherArgs(impl, n, argv);
  try {
    return await runCommandOrFail(cmd, rest, {
      env: cleanEnv(options.env),
      clearEnv: true,
      timeoutMs: options.timeoutMs ?? 120_000,
    });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(`${cmd} is missing: install it (${INSTALL[impl]}); MPI tests never skip`);
    }
    throw err;
  }
}
