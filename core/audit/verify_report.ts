/**
 * What `deno task verify` prints: the failures, damage and standing filter problems on
 * stderr, one line each; the counts, the files written and one line per thing to do on
 * stdout.
 * @module
 */

import { formatBytes } from "../format.ts";
import { formatDuration } from "../format.ts";
import { ExitCode } from "../exit_codes.ts";
import type { PendingFile, Tally, VerifyTransferResult } from "./verify.ts";
import type { DeepReport } from "./deep_verify.ts";

/** Where the report goes: `out` for the summary, `err` for each problem. */
export interface ReportSink {
  /** A line of the summary. */
  out(line: string): void;
  /** A line naming a problem. */
  err(line: string): void;
}

/** The process's stdout and stderr. */
const CONSOLE_SINK: ReportSink = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/** Pending files listed by name before the rest is summed up. */
const LIST_AT_MOST = 20;

const tally = (t: Tally) => `${t.files} (${formatBytes(t.bytes)})`;

function listSome(sink: ReportSink, what: string, files: readonly PendingFile[]): void {
  for (const f of files.slice(0, LIST_AT_MOST)) {
    sink.out(`${what}: ${f.srcPath} -> ${f.dstPath} (${formatBytes(f.sizeBytes)})`);
  }
  if (files.length > LIST_AT_MOST) {
    sink.out(`${what}: ... and ${files.length - LIST_AT_MOST} more`);
  }
}

function printDeep(sink: ReportSink, deep: DeepReport): void {
  for (const p of deep.problems) sink.err(`${p.kind}: ${p.path}: ${p.detail}`);
  for (const t of deep.temporaries) sink.out(`note: temporary ${t}`);
  for (const r of deep.repair.repaired) {
    const moved = r.quarantined === null ? "" : `; moved to ${r.quarantined}`;
    sink.out(`repaired: ${r.path}: recorded as no longer verified${moved}`);
  }
  for (const f of deep.repair.failed) sink.err(`not repaired: ${f.path}: ${f.reason}`);
  sink.out(
    `verify --deep: ${deep.ranks} rank(s) re-read ${deep.files} files ` +
      `(${formatBytes(deep.bytes)}) and listed ${deep.folders} folders in ` +
      `${formatDuration(deep.elapsedMs / 1000)}: ${deep.problems.length} problem(s), ` +
      `${deep.temporaries.length} temporar${deep.temporaries.length === 1 ? "y" : "ies"}`,
  );
}

/** Prints the result of `verify` (with the deep check's report after `--deep`). */
export function printVerifyReport(
  r: VerifyTransferResult,
  deep: DeepReport | null,
  sink: ReportSink = CONSOLE_SINK,
): void {
  const s = r.state;
  for (const line of s.badLogLines) sink.err(`note: unreadable log line ignored: ${line}`);
  for (const f of s.failures) sink.err(`failed: ${f.srcPath} -> ${f.dstPath}: ${f.reason}`);
  for (const p of s.filterProblems) {
    sink.err(`problem: ${p.path}: ${p.reason} (filter of ${p.foundAt}); ${p.advice}`);
  }
  if (deep) printDeep(sink, deep);
  else for (const p of r.damaged) sink.err(`${p.kind}: ${p.path}: ${p.detail}`);
  listSome(sink, "left", s.leftFiles);
  listSome(sink, "unscheduled", s.unscheduledFiles);
  sink.out(
    `verify: ${tally(s.scheduled)} scheduled, ${tally(s.verified)} verified, ` +
      `${tally(s.failed)} failed, ${tally(s.left)} left, ${tally(s.unscheduled)} not scheduled`,
  );
  sink.out(`verify: manifest of ${s.published.length} published files in ${r.manifest}`);
  for (const p of r.md5sums) sink.out(`verify: wrote ${p}`);
  if (r.code === ExitCode.Ok) {
    sink.out("verify: complete; checkpoint says completed: true");
    return;
  }
  const todo = s.left.files + s.unscheduled.files;
  if (todo > 0) {
    const hint = s.unscheduled.files > 0
      ? "run 'deno task schedule' then 'deno task run'"
      : "run 'deno task run' (or submit another run)";
    sink.out(`verify: ${todo} file(s) left: ${hint}`);
  }
  if (r.damaged.length > 0 && deep) {
    sink.out(
      `verify: the destination differs from the logs in ${r.damaged.length} place(s) (listed ` +
        "above); 'deno task verify --deep --repair' records missing, truncated and altered " +
        "files as no longer verified (moving damaged ones to the tool's quarantine folder) so " +
        "that the next run copies them again; move strays and other entries away yourself",
    );
  } else if (r.damaged.length > 0) {
    sink.out(
      `verify: ${r.damaged.length} published file(s) are not as their records say (listed ` +
        "above); run 'deno task verify --deep --repair' to check them, move damaged ones to " +
        "the tool's quarantine folder and have the next run copy them again",
    );
  }
  if (s.filterProblems.length > 0) {
    sink.out(
      `verify: ${s.filterProblems.length} problem(s) found by the filter still stand (listed ` +
        "above): the dataset misses those files; restore them and run 'deno task filter', or " +
        "remove the partition's 'completed' marker to leave it for later",
    );
  }
  if (s.failed.files > 0) {
    sink.out(
      `verify: ${s.failed.files} file(s) failed (reasons above); fix the causes and run again`,
    );
  }
}
