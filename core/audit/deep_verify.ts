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
import { hashFile } from "../transfer/hash_file.ts";
import { type Libc, openLibc } from "../io/libc.ts";
import { errorMessage } from "../errors.ts";
import type { Md5Engine } from "../md5/engine.ts";
import { mapPool } from "../map_pool.ts";
import { parseTemporaryName } from "../layout.ts";
import { destinationRoots, isMd5SumsTemporary, MD5SUMS_NAME } from "./manifest.ts";
import type { PublishedFile } from "./manifest.ts";
import type { TransferState } from "./verify.ts";
import { lstatOrNull } from "../io/lstat_or_null.ts";

/**
 * What is wrong with a destination path:
 * - `missing`: logged as verified, not there;
 * - `size`: its size differs from the logged one (truncated or grown);
 * - `altered`: same size, another MD5;
 * - `not-a-file`: logged as verified, but a folder, a symlink or another non-regular entry;
 * - `unreadable`: could not be read;
 * - `stray`: in a destination folder, but no verification record explains it.
 */
export type DeepProblemKind =
  | "missing"
  | "size"
  | "altered"
  | "not-a-file"
  | "unreadable"
  | "stray";

/** One difference between the destination folders and the logs. */
export interface DeepProblem {
  /** What is wrong. */
  kind: DeepProblemKind;
  /** Absolute path concerned. */
  path: string;
  /** Details (sizes, hashes, the logged failure). */
  detail: string;
}

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
export function deepShare(
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

function entryType(e: Deno.DirEntry | Deno.FileInfo): string {
  return e.isSymlink
    ? "a symlink"
    : e.isDirectory
    ? "a folder"
    : e.isFile
    ? "a file"
    : "a special file";
}

/** Re-reads one published file; returns a problem, or null when it matches its record. */
export async function checkPublished(
  file: PublishedFile,
  engine: Md5Engine,
  bufferSize: number,
  libc: Libc,
): Promise<DeepProblem | null> {
  const path = file.dstPath;
  let info: Deno.FileInfo | null;
  try {
    info = await lstatOrNull(path);
  } catch (err) {
    return { kind: "unreadable", path, detail: errorMessage(err) };
  }
  if (info === null) {
    return {
      kind: "missing",
      path,
      detail: `logged as verified (${file.sizeBytes} bytes, md5 ${file.md5}) but not there`,
    };
  }
  if (!info.isFile) {
    return {
      kind: "not-a-file",
      path,
      detail: `logged as a verified file, now ${entryType(info)}`,
    };
  }
  if (info.size !== file.sizeBytes) {
    const how = info.size < file.sizeBytes ? "truncated" : "grown";
    return {
      kind: "size",
      path,
      detail: `${how}: ${info.size} bytes, ${file.sizeBytes} logged`,
    };
  }
  try {
    const got = await hashFile(libc, path, { engine, bufferSize });
    if (got.sizeBytes !== file.sizeBytes) {
      return {
        kind: "size",
        path,
        detail: `size changed while read: ${got.sizeBytes} bytes, ${file.sizeBytes} logged`,
      };
    }
    if (got.md5 !== file.md5) {
      return { kind: "altered", path, detail: `md5 ${got.md5}, ${file.md5} logged` };
    }
  } catch (err) {
    return { kind: "unreadable", path, detail: errorMessage(err) };
  }
  return null;
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
        if (!roots.includes(path)) listing.folders.push(path);
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
  roots: readonly string[],
  explained: ReadonlySet<string>,
  failed: ReadonlyMap<string, string>,
  out: { problems: DeepProblem[]; temporaries: string[] },
): Promise<void> {
  for await (const e of Deno.readDir(folder)) {
    const path = join(folder, e.name);
    if (e.isDirectory && !e.isSymlink) {
      if (!roots.includes(path)) await walkFolder(path, roots, explained, failed, out);
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
export async function deepCheckRank(
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
    await walkFolder(folder, roots, explained, failed, out);
  }
  out.problems.forEach(found);
  report.elapsedMs = Date.now() - started;
  return report;
}

/** Merges the ranks' reports (any order) into one. */
export function mergeDeepReports(reports: readonly DeepRankReport[]): DeepReport {
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
  };
}
