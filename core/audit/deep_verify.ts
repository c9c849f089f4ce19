/**
 * The deep check of `verify --deep`: re-reads every published file and compares its size and
 * MD5 with its verification record, and lists every file of the destination folders that no
 * record explains. The work is shared over ranks (files by bytes, server folders by index);
 * each rank returns a {@linkcode DeepRankReport} that rank 0 merges.
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { assignRanks } from "../plan/balance.ts";
import type { Md5Engine } from "../md5/engine.ts";
import { openMd5Engine } from "../md5/open_engine.ts";
import { mapPool } from "../map_pool.ts";
import { openLibc } from "../io/libc.ts";
import { parseTemporaryName } from "../layout.ts";
import type { Comm } from "../../mpi/mod.ts";
import { destinationRoots, isMd5SumsTemporary, MD5SUMS_NAME } from "./manifest.ts";
import type { PublishedFile } from "./manifest.ts";
import { readTransferState, verifyTransfer } from "./verify.ts";
import type { TransferState, VerifyTransferResult } from "./verify.ts";
import { checkPublished, entryType } from "./published_check.ts";
import type { DeepProblem } from "./published_check.ts";
import { repairProblems } from "./repair.ts";
import type { RepairReport } from "./repair.ts";

/** What one rank checked. */
export interface DeepRankReport {
  /** The rank. */
  rank: number;
  /** Published files re-read (or found missing) by this rank. */
  files: number;
  /** Bytes re-read. */
  bytes: number;
  /** Server folders (and other folders) listed by this rank. */
  folders: number;
  /** Problems found, in no particular order. */
  problems: DeepProblem[];
  /** Hidden temporaries of this tool found (an interrupted run's, or a live one's). */
  temporaries: string[];
  /** Wall time in ms. */
  elapsedMs: number;
  /** What `--repair` did with this rank's problems (nothing without it). */
  repair: RepairReport;
}

/**
 * The merged result of all ranks: the ranks' counts added up, their problems and
 * temporaries sorted by path, and the longest rank wall time.
 */
export interface DeepReport extends Omit<DeepRankReport, "rank"> {
  /** Ranks that took part. */
  ranks: number;
}

/** Options of {@linkcode deepCheckRank}. */
export interface DeepCheckOptions {
  /** This process's rank. */
  rank: number;
  /** Number of ranks. */
  size: number;
  /** MD5 engine. */
  engine: Md5Engine;
  /** Files read at once by this rank (default: `data_transfer.files_in_flight`). */
  filesInFlight?: number;
  /** Receives one line per problem as it is found. */
  log?: (line: string) => void;
}

/** The published files rank `rank` of `size` re-reads: balanced by bytes, deterministic. */
function deepShare(
  published: readonly PublishedFile[],
  rank: number,
  size: number,
): PublishedFile[] {
  const sorted = published.slice().sort((a, b) =>
    a.dstPath < b.dstPath ? -1 : a.dstPath > b.dstPath ? 1 : 0
  );
  const ranks = assignRanks(sorted.map((f) => f.sizeBytes), size);
  return sorted.filter((_, i) => ranks[i] === rank);
}

/** Folders to list for strays: the server folders of every destination root, sorted. */
interface Listing {
  /** Folders below a root, to be walked (distributed over ranks). */
  folders: string[];
  /** Problems at the roots themselves (found by every rank; rank 0 reports them). */
  rootProblems: DeepProblem[];
  /** Temporaries at the roots. */
  rootTemporaries: string[];
}

async function listRoots(roots: readonly string[], explained: ReadonlySet<string>) {
  const listing: Listing = { folders: [], rootProblems: [], rootTemporaries: [] };
  for (const root of roots) {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(root));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    for (const e of entries) {
      const path = join(root, e.name);
      if (e.isDirectory && !e.isSymlink) {
        listing.folders.push(path);
      } else if (e.name === MD5SUMS_NAME && e.isFile) {
        continue;
      } else if (isMd5SumsTemporary(e.name) || parseTemporaryName(e.name) !== null) {
        listing.rootTemporaries.push(path);
      } else if (!explained.has(path)) {
        listing.rootProblems.push({
          kind: "stray",
          path,
          detail: `${entryType(e)} at the top of a destination folder that no log explains`,
        });
      }
    }
  }
  listing.folders.sort();
  return listing;
}

async function walkFolder(
  folder: string,
  explained: ReadonlySet<string>,
  failed: ReadonlyMap<string, string>,
  out: { problems: DeepProblem[]; temporaries: string[] },
): Promise<void> {
  for await (const e of Deno.readDir(folder)) {
    const path = join(folder, e.name);
    if (e.isDirectory && !e.isSymlink) {
      await walkFolder(path, explained, failed, out);
      continue;
    }
    if (e.isFile && explained.has(path)) continue;
    if (parseTemporaryName(e.name) !== null) {
      out.temporaries.push(path);
      continue;
    }
    const why = failed.get(path);
    out.problems.push({
      kind: "stray",
      path,
      detail: why !== undefined
        ? `${entryType(e)} whose transfer is logged as failed (${why})`
        : `${entryType(e)} that no verification log explains`,
    });
  }
}

/**
 * This rank's share of the deep check: re-reads its share of the published files (by bytes)
 * and lists its share of the server folders (by index; rank 0 also reports what lies at the
 * roots). Never throws for a per-file problem.
 */
async function deepCheckRank(
  config: Config,
  state: TransferState,
  options: DeepCheckOptions,
): Promise<DeepRankReport> {
  const started = Date.now();
  const report: DeepRankReport = {
    rank: options.rank,
    files: 0,
    bytes: 0,
    folders: 0,
    problems: [],
    temporaries: [],
    elapsedMs: 0,
    repair: { repaired: [], failed: [] },
  };
  const found = (p: DeepProblem) => {
    report.problems.push(p);
    options.log?.(`${p.kind}: ${p.path}: ${p.detail}`);
  };
  const mine = deepShare(state.published, options.rank, options.size);
  const t = config.transfer;
  const libc = openLibc();
  try {
    await mapPool(mine, Math.max(1, options.filesInFlight ?? t.filesInFlight), async (file) => {
      const problem = await checkPublished(file, options.engine, t.bufferSize, libc);
      report.files++;
      if (problem === null || problem.kind !== "missing") report.bytes += file.sizeBytes;
      if (problem) found(problem);
    });
  } finally {
    libc.close();
  }

  const roots = destinationRoots(config);
  const explained = new Set(state.published.map((f) => f.dstPath));
  const failed = new Map(state.failures.map((f) => [f.dstPath, f.reason]));
  const listing = await listRoots(roots, explained);
  if (options.rank === 0) {
    listing.rootProblems.forEach(found);
    report.temporaries.push(...listing.rootTemporaries);
  }
  const folders = listing.folders.filter((_, i) => i % options.size === options.rank);
  const out = { problems: [] as DeepProblem[], temporaries: report.temporaries };
  for (const folder of folders) {
    report.folders++;
    await walkFolder(folder, explained, failed, out);
  }
  out.problems.forEach(found);
  report.elapsedMs = Date.now() - started;
  return report;
}

/** Merges the ranks' reports (any order) into one. */
function mergeDeepReports(reports: readonly DeepRankReport[]): DeepReport {
  const problems = reports.flatMap((r) => r.problems);
  problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    ranks: reports.length,
    files: reports.reduce((s, r) => s + r.files, 0),
    bytes: reports.reduce((s, r) => s + r.bytes, 0),
    folders: reports.reduce((s, r) => s + r.folders, 0),
    problems,
    temporaries: reports.flatMap((r) => r.temporaries).sort(),
    elapsedMs: Math.max(0, ...reports.map((r) => r.elapsedMs)),
    repair: {
      repaired: reports.flatMap((r) => r.repair.repaired).sort(byPath),
      failed: reports.flatMap((r) => r.repair.failed).sort(byPath),
    },
  };
}

const byPath = (a: { path: string }, b: { path: string }) =>
  a.path < b.path ? -1 : a.path > b.path ? 1 : 0;

/** Options of {@linkcode runDeepVerify}. */
export interface DeepVerifyOptions {
  /** Record missing, truncated and altered files as no longer verified (see `repair.ts`). */
  repair: boolean;
  /** Receives rank 0's announcement before the check starts. */
  announce?: (line: string) => void;
  /** Receives notes of the MD5 engine (prefixed with the rank). */
  log?: (line: string) => void;
}

/** What {@linkcode runDeepVerify} found and did. */
export interface DeepVerifyResult {
  /** The verify phase's result, after the repair when there was one. */
  verify: VerifyTransferResult;
  /** The merged deep check (all problems found, and what the repair did). */
  deep: DeepReport;
}

/**
 * `verify --deep [--repair]` on every rank of `comm`: each rank re-reads its share of the
 * published files and lists its share of the folders (and, with `repair`, repairs what it
 * found, once every rank has finished looking); rank 0 gathers the reports, re-reads the logs
 * after a repair, and runs the verify phase with the problems that are left. Returns the exit
 * code on every rank, and the result on rank 0 (null elsewhere).
 */
export async function runDeepVerify(
  config: Config,
  comm: Comm,
  options: DeepVerifyOptions,
): Promise<{ code: number; result: DeepVerifyResult | null }> {
  const state = await readTransferState(config, { requireSchedule: true });
  const engine = openMd5Engine({
    prefer: config.transfer.md5Engine,
    log: (line) => options.log?.(`[rank ${comm.rank}] ${line}`),
  });
  if (comm.rank === 0) {
    options.announce?.(
      `verify --deep: ${comm.size} rank(s), MPI ${comm.implementation}, md5 engine ` +
        `${engine.name}, ${state.published.length} published files`,
    );
  }
  let mine: DeepRankReport;
  try {
    mine = await deepCheckRank(config, state, { rank: comm.rank, size: comm.size, engine });
  } finally {
    engine.close();
  }
  if (options.repair) {
    await comm.ibarrier().wait(); // nothing is moved while another rank still lists the folders
    mine.repair = await repairProblems(config, mine.problems, state.published, comm.rank);
  }
  await comm.ibarrier().wait(); // done here: wait for the others without taking a core
  const reports = comm.gatherObject(mine, 0);
  let result: DeepVerifyResult | null = null;
  if (reports !== null) {
    const deep = mergeDeepReports(reports);
    const repaired = new Set(deep.repair.repaired.map((r) => r.path));
    const verify = await verifyTransfer(config, {
      state: repaired.size > 0 ? await readTransferState(config, { requireSchedule: true }) : state,
      deepProblems: deep.problems.filter((p) => !repaired.has(p.path)),
    });
    result = { verify, deep };
  }
  const code = comm.allreduce(result?.verify.code ?? 0, "max");
  return { code, result };
}
