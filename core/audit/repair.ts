/**
 * The repair of `verify --deep --repair`: each published file found missing, truncated or
 * altered is recorded as no longer verified (an `invalidated` record appended to a
 * verification log of its own, so the next run copies it again to its planned name), and a
 * truncated or altered one is first moved into the tool's quarantine folder (never deleted).
 * Under MPI every rank repairs the problems of its own share.
 * @module
 */

import type { Config } from "../config.ts";
import { datasetFolder, toolPaths } from "../layout.ts";
import { errorMessage } from "../errors.ts";
import { VerificationLog } from "../records/verification_log.ts";
import { currentToken, formatToken } from "../transfer/temporaries.ts";
import { quarantineFile } from "./quarantine.ts";
import type { DeepProblem, DeepProblemKind } from "./published_check.ts";
import type { PublishedFile } from "./manifest.ts";

/** The kinds of problem a repair handles; the others are left for the user to look at. */
const REPAIRABLE: readonly DeepProblemKind[] = ["missing", "size", "altered"];

/** A published file recorded as no longer verified. */
export interface RepairedFile {
  /** The destination path (where the next run copies the source again). */
  path: string;
  /** What was wrong with it. */
  kind: DeepProblemKind;
  /** Where the damaged file now is, or null when it was missing. */
  quarantined: string | null;
}

/** What a repair did. */
export interface RepairReport {
  /** Files recorded as no longer verified. */
  repaired: RepairedFile[];
  /** Files that could not be moved (and so were not recorded), with the reason. */
  failed: Array<{ path: string; reason: string }>;
}

/**
 * Repairs the repairable `problems` (found by this rank) among the published files: moves
 * each truncated or altered file to the quarantine folder, then appends an `invalidated`
 * record for it (and for each missing one) to a new log of this rank, synced before return.
 */
export async function repairProblems(
  config: Config,
  problems: readonly DeepProblem[],
  published: readonly PublishedFile[],
  rank: number,
): Promise<RepairReport> {
  const report: RepairReport = { repaired: [], failed: [] };
  const byDst = new Map(published.map((f) => [f.dstPath, f]));
  const todo = problems.filter((p) => REPAIRABLE.includes(p.kind) && byDst.has(p.path));
  if (todo.length === 0) return report;
  const paths = toolPaths(config);
  const log = await VerificationLog.create(
    paths.verification,
    `repair_rank${rank}_${formatToken(currentToken())}_${Date.now()}`,
    todo.length,
  );
  try {
    for (const problem of todo) {
      const file = byDst.get(problem.path)!;
      let quarantined: string | null = null;
      if (problem.kind !== "missing") {
        try {
          quarantined = await quarantineFile(
            file.dstPath,
            datasetFolder(config, file.kind),
            paths.quarantine,
          );
        } catch (err) {
          report.failed.push({ path: file.dstPath, reason: errorMessage(err) });
          continue;
        }
      }
      const moved = quarantined === null ? "" : `; moved to ${quarantined}`;
      await log.append({
        srcPath: file.srcPath,
        dstPath: file.dstPath,
        hashsumSrc: file.md5,
        hashsumDst: "",
        sizeBytes: file.sizeBytes,
        verifyMode: "deep",
        verifiedAt: new Date().toISOString(),
        status: "invalidated",
        reason: `${problem.kind}: ${problem.detail}${moved}`,
        numRows: file.numRows,
        schemaFingerprint: "",
      });
      report.repaired.push({ path: file.dstPath, kind: problem.kind, quarantined });
    }
  } finally {
    await log.close();
  }
  return report;
}
