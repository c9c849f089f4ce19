/**
 * The filter phase: finds the files of completed partitions and plans a destination for
 * each new one. Idempotent and incremental: a source planned before keeps its destination.
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { updateCheckpoint } from "../records/checkpoint.ts";
import { errorMessage, InputError } from "../errors.ts";
import { writeFileAtomic } from "../records/atomic_file.ts";
import { destinationPath, safeServerName, SOURCE_FILE, toolPaths } from "../layout.ts";
import type { FileKind } from "../layout.ts";
import { isWithin } from "../is_within.ts";
import { formatFilterTable, readFilterTables } from "./plan_table.ts";
import type { PlanRow } from "./plan_table.ts";
import { mapPool } from "../map_pool.ts";
import { withToolLock } from "../records/tool_lock.ts";
import { COMPLETED_MARKER, writeFilterProblems } from "./filter_problems.ts";
import type { FilterProblem } from "./filter_problems.ts";

/** A planned source that changed or vanished since it was planned (kept as planned). */
export interface PlanNotice {
  /** The source path. */
  path: string;
  /** What changed. */
  reason: string;
}

/** What a filter run found and did. */
export interface FilterSummary {
  /** Partition folders seen. */
  partitionsSeen: number;
  /** Partitions holding the `completed` marker. */
  partitionsCompleted: number;
  /** Files planned by this run. */
  newFiles: number;
  /** Bytes of the files planned by this run. */
  newBytes: number;
  /** Files found that an earlier run had planned already. */
  alreadyPlanned: number;
  /** Files planned in all, by every run. */
  totalFiles: number;
  /** Bytes planned in all. */
  totalBytes: number;
  /** Planned sources whose size or modification time changed since they were planned. */
  changed: PlanNotice[];
  /** Planned sources that are gone (kept in the plan). */
  vanished: PlanNotice[];
  /** Files or folders that could not be planned (also written to `filter_problems.json`). */
  problems: FilterProblem[];
  /** The filter table written by this run, or null when nothing new was found. */
  tableWritten: string | null;
}

interface FoundFile {
  srcPath: string;
  serverName: string;
  partitionId: string;
  kind: FileKind;
  sizeBytes: number;
  mtimeMs: number;
}

/** Options of {@linkcode runFilter}. */
export interface FilterOptions {
  /** Partitions examined at once (more helps on a parallel file system). Default 32. */
  concurrency?: number;
}

/** Runs the filter phase for `config`: scans, plans, writes a table and the checkpoint. */
export async function runFilter(
  config: Config,
  options: FilterOptions = {},
): Promise<FilterSummary> {
  const paths = toolPaths(config);
  const root = await imagesRoot(config);
  await Deno.mkdir(paths.filterTables, { recursive: true });
  return await withToolLock(paths.lock, "filter or schedule", async () => {
    const planned = await readFilterTables(paths.filterTables);
    const bySrc = new Map(planned.map((r) => [r.srcPath, r]));
    const scan = await scanTree(config, root, options.concurrency ?? 32);
    const summary: FilterSummary = {
      partitionsSeen: scan.partitionsSeen,
      partitionsCompleted: scan.partitionsCompleted,
      newFiles: 0,
      newBytes: 0,
      alreadyPlanned: 0,
      totalFiles: planned.length,
      totalBytes: planned.reduce((s, r) => s + r.sizeBytes, 0),
      changed: [],
      vanished: [],
      problems: scan.problems,
      tableWritten: null,
    };
    const fresh: PlanRow[] = [];
    const seen = new Set<string>();
    for (const f of scan.files) {
      seen.add(f.srcPath);
      const old = bySrc.get(f.srcPath);
      if (old) {
        summary.alreadyPlanned++;
        if (old.sizeBytes !== f.sizeBytes || old.mtimeMs !== f.mtimeMs) {
          summary.changed.push({
            path: f.srcPath,
            reason: `planned with ${old.sizeBytes} bytes, mtime ${old.mtimeMs}; now ` +
              `${f.sizeBytes} bytes, mtime ${f.mtimeMs} (kept as planned, not re-planned)`,
          });
        }
        continue;
      }
      fresh.push({
        ...f,
        dstPath: destinationPath(config, f.serverName, f.kind, crypto.randomUUID()),
      });
    }
    for (const r of planned) {
      if (!seen.has(r.srcPath)) {
        summary.vanished.push({
          path: r.srcPath,
          reason: "planned earlier but not found now (kept in the plan)",
        });
      }
    }
    if (fresh.length > 0) {
      fresh.sort((a, b) => (a.srcPath < b.srcPath ? -1 : a.srcPath > b.srcPath ? 1 : 0));
      const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
      const name = `filter_${stamp}_${Deno.pid}.csv`;
      summary.tableWritten = join(paths.filterTables, name);
      await writeFileAtomic(summary.tableWritten, formatFilterTable(fresh));
      summary.newFiles = fresh.length;
      summary.newBytes = fresh.reduce((s, r) => s + r.sizeBytes, 0);
      summary.totalFiles += fresh.length;
      summary.totalBytes += summary.newBytes;
    }
    await writeFilterProblems(paths.filterProblems, summary.problems);
    await updateCheckpoint(paths.checkpoint, {
      filtering_completed: true,
      scheduling_completed: false,
      ...(fresh.length > 0 || summary.problems.length > 0 ? { completed: false } : {}),
    });
    return summary;
  });
}

interface ScanResult {
  files: FoundFile[];
  problems: FilterProblem[];
  partitionsSeen: number;
  partitionsCompleted: number;
}

function describe(err: unknown): string {
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.NotFound) return "no such file or folder";
  return errorMessage(err);
}

async function listDir(path: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(path)) out.push(e);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Resolves a folder entry that may be a symlink: returns an error text when it points
 * outside `root` (the real path of the images folder) or is not a folder.
 */
async function checkFolderEntry(
  path: string,
  entry: Deno.DirEntry,
  root: string,
): Promise<string | null> {
  if (!entry.isSymlink) return entry.isDirectory ? null : "is not a folder";
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch (err) {
    return `is a symlink that does not resolve (${describe(err)})`;
  }
  if (!isWithin(root, real)) {
    return `is a symlink to ${real}, outside the images folder ${root}: refused`;
  }
  const info = await Deno.stat(real);
  return info.isDirectory ? null : "is a symlink to something that is not a folder";
}

/** The images folder with its symlinks resolved; an {@linkcode InputError} if unusable. */
async function imagesRoot(config: Config): Promise<string> {
  const images = config.imagesFolder;
  try {
    const root = await Deno.realPath(images);
    if (!(await Deno.stat(root)).isDirectory) throw new Deno.errors.NotADirectory();
    return root;
  } catch (err) {
    throw new InputError(
      `${config.configPath}: key 'output_structure.images_folder': ${images} is not a readable ` +
        `folder (${describe(err)})`,
    );
  }
}

async function scanTree(config: Config, root: string, concurrency: number): Promise<ScanResult> {
  const images = config.imagesFolder;
  const result: ScanResult = { files: [], problems: [], partitionsSeen: 0, partitionsCompleted: 0 };
  const partitions: Array<{ path: string; server: string; partition: string }> = [];
  for (const s of await listDir(images)) {
    if (!s.name.startsWith("server_name=")) continue;
    const serverPath = join(images, s.name);
    const server = s.name.slice("server_name=".length);
    const bad = await checkFolderEntry(serverPath, s, root);
    if (bad) {
      result.problems.push({ path: serverPath, reason: bad, entry: serverPath, partition: null });
      continue;
    }
    if (/[\r\n]/.test(serverPath)) {
      result.problems.push({
        path: JSON.stringify(serverPath),
        reason: "holds a line break: refused",
        entry: serverPath,
        partition: null,
      });
      continue;
    }
    try {
      safeServerName(server);
    } catch (err) {
      result.problems.push({
        path: serverPath,
        reason: errorMessage(err),
        entry: serverPath,
        partition: null,
      });
      continue;
    }
    let entries: Deno.DirEntry[];
    try {
      entries = await listDir(serverPath);
    } catch (err) {
      result.problems.push({
        path: serverPath,
        reason: `cannot list: ${describe(err)}`,
        entry: serverPath,
        partition: null,
      });
      continue;
    }
    for (const p of entries) {
      if (!p.name.startsWith("partition_id=")) continue;
      const path = join(serverPath, p.name);
      const badPartition = await checkFolderEntry(path, p, root);
      if (badPartition) {
        result.problems.push({ path, reason: badPartition, entry: path, partition: null });
        continue;
      }
      partitions.push({ path, server, partition: p.name.slice("partition_id=".length) });
    }
  }
  result.partitionsSeen = partitions.length;
  const found = await mapPool(partitions, concurrency, async (p) => {
    const problems: FilterProblem[] = [];
    const files: FoundFile[] = [];
    if (/[\r\n]/.test(p.path)) {
      problems.push({
        path: JSON.stringify(p.path),
        reason: "holds a line break: refused",
        entry: p.path,
        partition: null,
      });
      return { completed: false, files, problems };
    }
    let names: Map<string, Deno.DirEntry>;
    try {
      names = new Map((await listDir(p.path)).map((e) => [e.name, e]));
    } catch (err) {
      problems.push({
        path: p.path,
        reason: `cannot list: ${describe(err)}`,
        entry: p.path,
        partition: null,
      });
      return { completed: false, files, problems };
    }
    if (!names.has(COMPLETED_MARKER)) return { completed: false, files, problems };
    for (const kind of ["successes", "errors"] as const) {
      const srcPath = join(p.path, SOURCE_FILE[kind]);
      const skip = (reason: string) =>
        problems.push({ path: srcPath, reason, entry: srcPath, partition: p.path });
      const entry = names.get(SOURCE_FILE[kind]);
      if (!entry) {
        skip("missing in a completed partition: skipped");
        continue;
      }
      try {
        if (entry.isSymlink) {
          skip("is a symlink: refused (copy the file itself)");
          continue;
        }
        const info = await Deno.lstat(srcPath);
        if (!info.isFile) {
          skip("is not a regular file: skipped");
          continue;
        }
        files.push({
          srcPath,
          serverName: p.server,
          partitionId: p.partition,
          kind,
          sizeBytes: info.size,
          mtimeMs: info.mtime?.getTime() ?? 0,
        });
      } catch (err) {
        skip(`cannot stat: ${describe(err)}`);
      }
    }
    return { completed: true, files, problems };
  });
  for (const f of found) {
    if (f.completed) result.partitionsCompleted++;
    result.files.push(...f.files);
    result.problems.push(...f.problems);
  }
  return result;
}
