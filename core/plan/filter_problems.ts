/**
 * The filter's problems, kept for the phases after it: every filter run writes what it could
 * not plan to `data_transfer/filter_problems.json`, and `verify` and `status` re-check each
 * one with a stat, so that a problem still true is never lost downstream (a completed
 * partition with a missing `errors.parquet` would otherwise end as half a partition in a
 * dataset that verify calls complete).
 * @module
 */

import { join } from "node:path";
import { writeFileAtomic } from "../records/atomic_file.ts";
import { errorMessage, InputError } from "../errors.ts";
import { lstatOrNull } from "../io/lstat_or_null.ts";

/** Marker file the downloader writes when a partition is complete. */
export const COMPLETED_MARKER = "completed";

/** Something the filter could not plan, with the reason. */
export interface FilterProblem {
  /** The path concerned, as printed (a path holding a line break is shown quoted). */
  path: string;
  /** What is wrong, in words a user can act on. */
  reason: string;
  /** The entry on disk, to look at again. */
  entry: string;
  /**
   * For a file of a completed partition (missing, not a regular file): the partition folder.
   * `null` for a folder the filter could not use (a bad name, a symlink out, unlistable).
   */
  partition: string | null;
}

/** A filter problem that is still true. */
export interface StandingProblem {
  /** The path concerned. */
  path: string;
  /** What the filter found. */
  reason: string;
  /** When the filter found it (ISO 8601). */
  foundAt: string;
  /** What to do about it. */
  advice: string;
}

/** Whether something is at `path`; when it cannot be told (no permission), it may be. */
async function present(path: string): Promise<boolean> {
  try {
    return (await lstatOrNull(path)) !== null;
  } catch {
    return true;
  }
}

/** Version of the JSON shape of `filter_problems.json`. */
const PROBLEMS_VERSION = 1;

/** Writes the problems of a filter run atomically (an empty list clears earlier ones). */
export async function writeFilterProblems(
  path: string,
  problems: readonly FilterProblem[],
  at: Date = new Date(),
): Promise<void> {
  const doc = { version: PROBLEMS_VERSION, foundAt: at.toISOString(), problems };
  await writeFileAtomic(path, JSON.stringify(doc, null, 1) + "\n");
}

/** Reads the problems of the last filter run (none before the first one). */
export async function readFilterProblems(
  path: string,
): Promise<{ foundAt: string; problems: FilterProblem[] }> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { foundAt: "", problems: [] };
    throw err;
  }
  try {
    const doc = JSON.parse(text);
    if (doc?.version !== PROBLEMS_VERSION || !Array.isArray(doc.problems)) {
      throw new Error(`expected version ${PROBLEMS_VERSION} with a list of problems`);
    }
    return { foundAt: String(doc.foundAt ?? ""), problems: doc.problems as FilterProblem[] };
  } catch (err) {
    throw new InputError(
      `${path}: not readable (${errorMessage(err)}); run 'deno task filter' to write it again`,
    );
  }
}

/**
 * The problems of the last filter run that are still true, each checked again with a stat:
 * a file of a completed partition stands while the partition holds its `completed` marker
 * and the file is not planned (`planned` gives the planned source paths; it is called only
 * when there is a problem to check); a folder problem stands while the folder is there.
 */
export async function standingFilterProblems(
  path: string,
  planned: () => ReadonlySet<string>,
): Promise<StandingProblem[]> {
  const { foundAt, problems } = await readFilterProblems(path);
  const standing: StandingProblem[] = [];
  if (problems.length === 0) return standing;
  const sources = planned();
  for (const p of problems) {
    if (p.partition !== null) {
      const marker = join(p.partition, COMPLETED_MARKER);
      if (sources.has(p.entry) || !(await present(marker))) continue;
      const now = await lstatOrNull(p.entry).catch(() => null);
      const advice = now?.isFile
        ? "it is there now: run 'deno task filter' to plan it"
        : `restore it and run 'deno task filter', or remove ${marker} to leave the ` +
          "partition for later";
      standing.push({ path: p.path, reason: p.reason, foundAt, advice });
    } else if (await present(p.entry)) {
      standing.push({
        path: p.path,
        reason: p.reason,
        foundAt,
        advice: "fix or remove it, then run 'deno task filter' again",
      });
    }
  }
  return standing;
}
