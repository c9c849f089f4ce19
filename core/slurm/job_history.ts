/**
 * `job_history.csv`: every Slurm job id the tool submitted, one line each, appended as soon
 * as sbatch returns it; and which of them Slurm still lists as pending or running.
 * @module
 */

import { writeAll } from "../io/write_all.ts";
import { formatCsvLine, parseCsv, parseCsvLine } from "../records/csv.ts";
import { jobStates } from "./client.ts";
import { SubmitError } from "./submit_error.ts";

/** Columns of `job_history.csv`. */
export const JOB_HISTORY_COLUMNS: readonly string[] = [
  "submitted_at",
  "phase",
  "job_id",
  "dependency",
  "script",
];

/** Job ids recorded in `job_history.csv` (empty when there is none). */
export async function readJobHistory(path: string): Promise<Record<string, string>[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return parseCsv(text).records;
}

/**
 * Appends records to `job_history.csv`, writing the header when the file is new. An existing
 * file keeps its own columns (ours are matched by name); a torn last line is ended first.
 */
export async function appendJobHistory(
  path: string,
  records: readonly Record<string, string>[],
): Promise<void> {
  let columns = JOB_HISTORY_COLUMNS;
  let prefix = "";
  let existing = "";
  try {
    existing = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (existing.trim() === "") {
    prefix = JOB_HISTORY_COLUMNS.join(",") + "\n";
  } else {
    columns = parseCsvLine(existing.split("\n")[0].replace(/\r$/, "")) ?? JOB_HISTORY_COLUMNS;
    if (!existing.endsWith("\n")) prefix = "\n";
  }
  const body = records.map((r) => formatCsvLine(columns, r)).join("");
  const file = await Deno.open(path, { create: true, append: true });
  try {
    const bytes = new TextEncoder().encode(prefix + body);
    await writeAll(file, bytes);
    await file.syncData();
  } finally {
    file.close();
  }
}

/**
 * Jobs of `job_history.csv` that Slurm still lists as pending or running (`squeue`), as
 * `id (phase, STATE)`. Jobs Slurm forgot are done.
 */
export async function activeChainJobs(historyPath: string): Promise<string[]> {
  const records = await readJobHistory(historyPath);
  const phaseOf = new Map(records.map((r) => [r.job_id, r.phase]));
  const ids = [...phaseOf.keys()].filter((id) => /^\d+(_\d+)?$/.test(id ?? ""));
  if (ids.length === 0) return [];
  const states = await jobStates(ids);
  if (states === null) {
    throw new SubmitError(
      "'squeue' cannot be run: run this on a Slurm login node (or load the Slurm module)",
    );
  }
  // In the order of the history, so that the last one is the end of the latest chain.
  return ids.filter((id) => states.has(id)).map((id) =>
    `${id} (${phaseOf.get(id)}, ${states.get(id)})`
  );
}
