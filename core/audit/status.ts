/**
 * Where the tool stands, from its files on disk alone (checkpoint, filter tables, schedule,
 * verification logs, `run_summary.json`): no data file is read, no MPI is needed.
 *
 * The JSON form ({@linkcode StatusReport}, `deno task status --json`) is stable: fields are
 * only ever added, and `version` changes if one changes meaning. Problems of the last filter
 * run are checked again with a stat each (the only look outside the tool's folder).
 * @module
 */

import type { Config } from "../config.ts";
import { readCheckpoint } from "../records/checkpoint.ts";
import { formatBytes } from "../format.ts";
import { toolPaths } from "../layout.ts";
import { formatDuration } from "../format.ts";
import { readTransferState } from "./verify.ts";
import type { Tally, TransferState } from "./verify.ts";
import type { StandingProblem } from "../plan/filter_problems.ts";
import type { RunSummary } from "../transfer/run_summary.ts";
import { errorMessage } from "../errors.ts";

/** Version of the JSON shape of {@linkcode StatusReport}. */
export const STATUS_VERSION = 1;

/** The last run, from `run_summary.json` (`ranks` is its world size). */
export type LastRun =
  & Pick<
    RunSummary,
    | "finishedAt"
    | "done"
    | "existing"
    | "failed"
    | "left"
    | "bytes"
    | "seconds"
    | "bytesPerSecond"
    | "stoppedForTime"
  >
  & { ranks: number };

/**
 * Where the tool stands (`deno task status --json`). Counts are `{files, bytes}`:
 * - `planned`: every file of the filter tables;
 * - `scheduled`: rows of `schedule.csv`;
 * - `verified`, `failed`, `left`: scheduled files whose latest record is `verified`, is
 *   `failed`, or that have no record yet;
 * - `unscheduled`: planned files missing from the schedule;
 * - `remaining`: `failed + left + unscheduled`, what the next run has to do.
 *
 * `etaSeconds` is `remaining.bytes` at the last run's rate (0 when nothing remains, `null`
 * without a rate).
 */
export interface StatusReport extends
  Pick<
    TransferState,
    "planned" | "scheduled" | "verified" | "failed" | "left" | "unscheduled" | "remaining"
  > {
  /** {@linkcode STATUS_VERSION}. */
  version: number;
  /** When the status was taken (ISO 8601). */
  generatedAt: string;
  /** The tool's working folder. */
  toolFolder: string;
  /** Phase flags of the checkpoint (false when absent). */
  phases: { filtering: boolean; scheduling: boolean; completed: boolean };
  /** Verification logs read and log lines ignored (torn by a crash, say). */
  logs: { files: number; badLines: number };
  /** The last run, or null before the first one. */
  lastRun: LastRun | null;
  /** Seconds left at the last run's rate, or null. */
  etaSeconds: number | null;
  /** Remarks (an unreadable run summary, a schedule older than the filter). */
  notes: string[];
  /**
   * Problems of the last filter run that are still true, each with what to do (`verify`
   * exits 3 and the transfer is not complete while one stands).
   */
  filterProblems: StandingProblem[];
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

async function readLastRun(path: string, notes: string[]): Promise<LastRun | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  let s: Record<string, unknown>;
  try {
    s = JSON.parse(text);
    if (typeof s !== "object" || s === null) throw new Error("not an object");
  } catch (err) {
    notes.push(`${path}: not readable as JSON (${errorMessage(err)}); rate unknown`);
    return null;
  }
  return {
    finishedAt: String(s.finishedAt ?? ""),
    ranks: num(s.size),
    done: num(s.done),
    existing: num(s.existing),
    failed: num(s.failed),
    left: num(s.left),
    bytes: num(s.bytes),
    seconds: num(s.seconds),
    bytesPerSecond: num(s.bytesPerSecond),
    stoppedForTime: s.stoppedForTime === true,
  };
}

/** Reads where the tool of `config` stands. */
export async function readStatus(config: Config, now: Date = new Date()): Promise<StatusReport> {
  const paths = toolPaths(config);
  const notes: string[] = [];
  const [checkpoint, state, lastRun] = await Promise.all([
    readCheckpoint(paths.checkpoint),
    readTransferState(config),
    readLastRun(paths.runSummary, notes),
  ]);
  if (!state.hasSchedule && state.planned.files > 0) {
    notes.push("no schedule yet: run 'deno task schedule'");
  } else if (state.unscheduled.files > 0) {
    notes.push(
      `${state.unscheduled.files} planned file(s) are not in the schedule: ` +
        "run 'deno task schedule'",
    );
  }
  const rate = lastRun?.bytesPerSecond ?? 0;
  const etaSeconds = state.remaining.files === 0
    ? 0
    : rate > 0
    ? state.remaining.bytes / rate
    : null;
  return {
    version: STATUS_VERSION,
    generatedAt: now.toISOString(),
    toolFolder: paths.root,
    phases: {
      filtering: checkpoint.filtering_completed === true,
      scheduling: checkpoint.scheduling_completed === true,
      completed: checkpoint.completed === true,
    },
    planned: state.planned,
    scheduled: state.scheduled,
    verified: state.verified,
    failed: state.failed,
    left: state.left,
    unscheduled: state.unscheduled,
    remaining: state.remaining,
    logs: { files: state.logFiles, badLines: state.badLogLines.length },
    lastRun,
    etaSeconds,
    notes,
    filterProblems: state.filterProblems,
  };
}

/** Formats a status report as a table for people. */
export function formatStatus(s: StatusReport): string {
  const flag = (b: boolean) => (b ? "done" : "not done");
  const lines = [
    `data_transfer status (${s.toolFolder})`,
    "",
    `phases: filter ${flag(s.phases.filtering)}, schedule ${flag(s.phases.scheduling)}, ` +
    `transfer ${s.phases.completed ? "completed" : "not completed"}`,
    "",
  ];
  const rows: Array<[string, Tally]> = [
    ["planned", s.planned],
    ["scheduled", s.scheduled],
    ["verified", s.verified],
    ["failed", s.failed],
    ["left", s.left],
    ["not scheduled", s.unscheduled],
    ["remaining", s.remaining],
  ];
  const pct = (t: Tally) =>
    s.planned.bytes > 0 ? `${((t.bytes / s.planned.bytes) * 100).toFixed(1)}%` : "-";
  lines.push(
    `${"".padEnd(14)}${"files".padStart(12)}${"bytes".padStart(14)}${"of plan".padStart(10)}`,
  );
  for (const [name, t] of rows) {
    lines.push(
      `${name.padEnd(14)}${String(t.files).padStart(12)}${formatBytes(t.bytes).padStart(14)}` +
        `${pct(t).padStart(10)}`,
    );
  }
  lines.push("");
  if (s.lastRun) {
    const r = s.lastRun;
    lines.push(
      `last run: ended ${r.finishedAt}, ${r.ranks} rank(s), ${r.done} copied, ${r.existing} ` +
        `found published, ${r.failed} failed, ${r.left} left; ${formatBytes(r.bytes)} in ` +
        `${formatDuration(r.seconds)} (${formatBytes(r.bytesPerSecond)}/s)` +
        (r.stoppedForTime ? ", stopped for the time budget" : ""),
    );
  } else {
    lines.push("last run: none yet");
  }
  lines.push(
    `time left: ${s.etaSeconds === null ? "unknown (no rate yet)" : formatDuration(s.etaSeconds)}${
      s.etaSeconds !== null && s.etaSeconds > 0 ? " at the last run's rate" : ""
    }`,
  );
  lines.push(`logs: ${s.logs.files} verification log(s), ${s.logs.badLines} line(s) ignored`);
  for (const p of s.filterProblems) lines.push(`problem: ${p.path}: ${p.reason}; ${p.advice}`);
  if (s.filterProblems.length > 0) {
    lines.push(
      `note: ${s.filterProblems.length} problem(s) of the filter still stand (listed above): ` +
        "the transfer is not complete while they do",
    );
  }
  for (const n of s.notes) lines.push(`note: ${n}`);
  return lines.join("\n");
}
