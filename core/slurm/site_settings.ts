/**
 * The site settings file (`slurm/site.sh` by default, or `$DT_SITE`): one bash file holding
 * the extra sbatch arguments, Deno, the MPI launch command and the module loads. This module
 * reads its sbatch settings by sourcing it in bash; the jobs source it themselves.
 * @module
 */

import { resolve } from "node:path";
import { errorMessage } from "../errors.ts";
import type { SlurmPhase } from "./slurm_phase.ts";
import { SubmitError } from "./submit_error.ts";

/** Environment variable naming the site settings file (default `<repo>/slurm/site.sh`). */
export const SITE_ENV = "DT_SITE";

/** The sbatch-related settings of the site file. */
export interface SiteSettings {
  /** Absolute path of the site file. */
  path: string;
  /** `DT_SBATCH_ARGS`: extra sbatch arguments of every job (account, partition, qos...). */
  sbatchArgs: string[];
  /** `DT_SBATCH_ARGS_FILTER`, `_SCHEDULER`, `_WORKER`, `_VERIFIER`: per phase, after those. */
  phaseArgs: Record<SlurmPhase, string[]>;
  /** `DT_WORKER_TIME`: time limit of the worker jobs, if set. */
  workerTime?: string;
}

const SITE_ARRAYS: Record<string, SlurmPhase | "all"> = {
  DT_SBATCH_ARGS: "all",
  DT_SBATCH_ARGS_FILTER: "filter",
  DT_SBATCH_ARGS_SCHEDULER: "scheduler",
  DT_SBATCH_ARGS_WORKER: "worker",
  DT_SBATCH_ARGS_VERIFIER: "verifier",
};

/**
 * Reads the sbatch settings of a site file by sourcing it in `bash` (its `dt_site_setup`
 * function, where module loads belong, is not called). Throws {@linkcode SubmitError} when the
 * file is missing or bash fails on it.
 */
export async function readSiteSettings(path: string): Promise<SiteSettings> {
  const abs = resolve(path);
  try {
    if (!(await Deno.stat(abs)).isFile) throw new Error("not a file");
  } catch {
    throw new SubmitError(
      `${abs}: no site settings file there; copy slurm/site.sh and set ${SITE_ENV} or ` +
        `--site to it`,
    );
  }
  const names = Object.keys(SITE_ARRAYS);
  const script = `source "$1" >&2 || exit 97
for _dt_name in ${names.join(" ")}; do
  declare -n _dt_ref="$_dt_name"
  printf '%s\\0%s\\0' "$_dt_name" "\${#_dt_ref[@]}"
  if [[ \${#_dt_ref[@]} -gt 0 ]]; then printf '%s\\0' "\${_dt_ref[@]}"; fi
  unset -n _dt_ref
done
printf 'DT_WORKER_TIME\\0%s\\0' "\${DT_WORKER_TIME:-}"
`;
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("bash", {
      args: ["-c", script, "dt-site", abs],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    throw new SubmitError(`cannot run bash to read ${abs}: ${errorMessage(err)}`);
  }
  const dec = new TextDecoder();
  if (!out.success) {
    throw new SubmitError(
      `${abs}: bash could not source it (exit ${out.code}): ${dec.decode(out.stderr).trim()}`,
    );
  }
  const fields = dec.decode(out.stdout).split("\0");
  const site: SiteSettings = {
    path: abs,
    sbatchArgs: [],
    phaseArgs: { filter: [], scheduler: [], worker: [], verifier: [] },
  };
  let i = 0;
  for (const name of names) {
    if (fields[i] !== name) throw new SubmitError(`${abs}: unexpected output reading ${name}`);
    const n = Number(fields[i + 1]);
    const values = fields.slice(i + 2, i + 2 + n);
    i += 2 + n;
    const target = SITE_ARRAYS[name];
    if (target === "all") site.sbatchArgs = values;
    else site.phaseArgs[target] = values;
  }
  const workerTime = fields[i] === "DT_WORKER_TIME" ? fields[i + 1] : "";
  if (workerTime) site.workerTime = workerTime;
  return site;
}
