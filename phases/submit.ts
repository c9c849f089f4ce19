/**
 * `deno task submit --config FILE`: submits the Slurm chain filter → scheduler →
 * `num_workers` workers → verifier, each `sbatch --dependency=afterany:<previous>`, skipping
 * the phases the checkpoint shows done. Each submitted job's id is the last word of its line
 * and is appended to `job_history.csv`.
 * @module
 */

import { resolve } from "node:path";
import { CONFIG_OPTION, configFromCommand, parseCommand, runMain } from "../core/cli.ts";
import { SUBMIT_KEYS } from "../core/config.ts";
import { ExitCode } from "../core/exit_codes.ts";
import { toolPaths } from "../core/layout.ts";
import { readCheckpoint } from "../core/records/checkpoint.ts";
import { repositoryRoot } from "../core/repository_root.ts";
import { formatDryRun } from "../core/slurm/dry_run.ts";
import { readSiteSettings, SITE_ENV } from "../core/slurm/site_settings.ts";
import { submitChain } from "../core/slurm/submit.ts";
import { DEFAULT_WORKER_TIME, planSubmission } from "../core/slurm/submit_plan.ts";
import type { SubmitOptions } from "../core/slurm/submit_plan.ts";

/** Submits the chain for `args` (default: the command line) and exits with its code. */
export function start(args: string[] = Deno.args): Promise<never> {
  return runMain(async () => {
    const cmd = parseCommand(
      "submit",
      "Submits the Slurm jobs of the transfer: filter, scheduler, tools_parameters.num_workers\n" +
        "worker jobs (each resumes where the one before stopped) and the verifier, chained with\n" +
        "--dependency=afterany. Phases the checkpoint shows done are skipped. Job ids go to\n" +
        "data_transfer/job_history.csv; each one is the last word of its output line.\n" +
        "Site settings (account, partition, Deno, MPI launch): slurm/site.sh or $" + SITE_ENV +
        ".",
      {
        ...CONFIG_OPTION,
        "reset-filtering": {
          type: "boolean",
          help: "run the filter again (it is incremental: nothing is deleted)",
        },
        "reset-scheduling": { type: "boolean", help: "run the scheduler again" },
        "reset-runners": {
          type: "boolean",
          help: "run workers and verifier even if the checkpoint says completed",
        },
        "worker-time": {
          type: "string",
          value: "TIME",
          help:
            `time limit of each worker job (default DT_WORKER_TIME, else ${DEFAULT_WORKER_TIME})`,
        },
        after: {
          type: "string",
          value: "JOBID",
          help: "make the first job wait for this job (afterany)",
        },
        site: { type: "string", value: "FILE", help: `site settings (default $${SITE_ENV})` },
        "dry-run": { type: "boolean", help: "print the sbatch commands, submit nothing" },
      },
      args,
    );
    const config = await configFromCommand(cmd, "submit", SUBMIT_KEYS);
    const home = repositoryRoot();
    const sitePath = (cmd.values.site as string | undefined) ?? Deno.env.get(SITE_ENV) ??
      resolve(home, "slurm", "site.sh");
    const options: SubmitOptions = {
      home,
      site: await readSiteSettings(sitePath),
      resetFiltering: cmd.values["reset-filtering"] === true,
      resetScheduling: cmd.values["reset-scheduling"] === true,
      resetRunners: cmd.values["reset-runners"] === true,
      workerTime: cmd.values["worker-time"] as string | undefined,
      after: cmd.values.after as string | undefined,
    };
    const paths = toolPaths(config);
    if (cmd.values["dry-run"]) {
      const plan = planSubmission(config, await readCheckpoint(paths.checkpoint), options);
      for (const line of formatDryRun(plan)) console.log(line);
      return ExitCode.Ok;
    }
    const { plan, submitted } = await submitChain(config, options);
    if (submitted.length === 0) {
      console.log("submit: nothing to submit: the checkpoint says the transfer is completed");
    } else {
      console.log(
        `submit: ${submitted.length} job(s) recorded in ${paths.jobHistory}; ` +
          `output in ${plan.outputFolder}`,
      );
    }
    return ExitCode.Ok;
  });
}

if (import.meta.main) await start();
