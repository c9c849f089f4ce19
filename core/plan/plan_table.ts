/**
 * The planned transfers: filter tables (`filter_table/*.csv`) and the schedule
 * (`schedule.csv`). One row per source file; `src_path` and `dst_path` are absolute.
 * @module
 */

import { join } from "node:path";
import { formatCsvChunks, parseCsv, requireColumns } from "../records/csv.ts";
import type { CsvRecord } from "../records/csv.ts";
import { InputError } from "../errors.ts";
import type { FileKind } from "../layout.ts";

/** One planned transfer. */
export interface PlanRow {
  /** Absolute source path under the images folder. */
  srcPath: string;
  /** Absolute destination path in a dataset folder. */
  dstPath: string;
  /** Server name as the downloader wrote it (before it was made safe). */
  serverName: string;
  /** Partition id. */
  partitionId: string;
  /** `successes` or `errors`. */
  kind: FileKind;
  /** Size of the source when it was planned. */
  sizeBytes: number;
  /** Modification time of the source when it was planned (ms since the epoch). */
  mtimeMs: number;
}

/** A planned transfer assigned to an MPI rank. */
export interface ScheduleRow extends PlanRow {
  /** The rank that copies it in a world of the schedule's size. */
  rank: number;
}

/** Columns of a filter table. */
export const FILTER_COLUMNS = [
  "src_path",
  "dst_path",
  "server_name",
  "partition_id",
  "kind",
  "size_bytes",
  "mtime_ms",
] as const;

/** Columns of the schedule. */
export const SCHEDULE_COLUMNS = [
  "src_path",
  "dst_path",
  "size_bytes",
  "rank",
  "server_name",
  "partition_id",
  "kind",
  "mtime_ms",
] as const;

function toRecord(row: PlanRow | ScheduleRow): CsvRecord {
  return {
    src_path: row.srcPath,
    dst_path: row.dstPath,
    server_name: row.serverName,
    partition_id: row.partitionId,
    kind: row.kind,
    size_bytes: String(row.sizeBytes),
    mtime_ms: String(row.mtimeMs),
    rank: "rank" in row ? String(row.rank) : "",
  };
}

function wholeNumber(path: string, line: number, key: string, value: string): number {
  const n = Number(value);
  if (value === "" || !Number.isSafeInteger(n) || n < 0) {
    throw new InputError(
      `${path}: row ${line}: column ${key}: expected a whole number, got "${value}"`,
    );
  }
  return n;
}

function fromRecord(path: string, line: number, r: CsvRecord): PlanRow {
  if (r.kind !== "successes" && r.kind !== "errors") {
    throw new InputError(
      `${path}: row ${line}: column kind: expected successes or errors, got "${r.kind}"`,
    );
  }
  for (const key of ["src_path", "dst_path"]) {
    if (!r[key].startsWith("/")) {
      throw new InputError(
        `${path}: row ${line}: column ${key}: expected an absolute path, got "${r[key]}"`,
      );
    }
  }
  return {
    srcPath: r.src_path,
    dstPath: r.dst_path,
    serverName: r.server_name,
    partitionId: r.partition_id,
    kind: r.kind,
    sizeBytes: wholeNumber(path, line, "size_bytes", r.size_bytes),
    mtimeMs: wholeNumber(path, line, "mtime_ms", r.mtime_ms),
  };
}

async function readTable(path: string, required: readonly string[]): Promise<CsvRecord[]> {
  const parsed = parseCsv(await Deno.readTextFile(path));
  requireColumns(path, parsed.columns, required);
  if (parsed.badLines.length > 0 || parsed.tornTail) {
    const where = parsed.badLines.length > 0 ? `line ${parsed.badLines[0]}` : "the last line";
    throw new InputError(`${path}: ${where} is not a well-formed CSV record`);
  }
  return parsed.records;
}

/** Formats filter-table rows as CSV text, in chunks. */
export function formatFilterTable(rows: readonly PlanRow[]): Iterable<string> {
  return formatCsvChunks(FILTER_COLUMNS, rows, toRecord);
}

/** Formats schedule rows as CSV text, in chunks. */
export function formatSchedule(rows: readonly ScheduleRow[]): Iterable<string> {
  return formatCsvChunks(SCHEDULE_COLUMNS, rows, toRecord);
}

/** Lists the filter tables of a folder in name order (empty when the folder is absent). */
export async function listFilterTables(folder: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(folder)) {
      if (e.isFile && e.name.endsWith(".csv") && !e.name.startsWith(".")) names.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return names.sort().map((n) => join(folder, n));
}

/**
 * Reads every filter table of `folder`. Throws {@linkcode InputError} when a source or a
 * destination appears twice, naming both tables.
 */
export async function readFilterTables(folder: string): Promise<PlanRow[]> {
  const rows: PlanRow[] = [];
  const seenSrc = new Map<string, string>();
  const seenDst = new Map<string, string>();
  for (const table of await listFilterTables(folder)) {
    const records = await readTable(table, FILTER_COLUMNS);
    records.forEach((r, i) => {
      const row = fromRecord(table, i + 2, r);
      const where = `${table} row ${i + 2}`;
      const src = seenSrc.get(row.srcPath);
      if (src) throw new InputError(`source ${row.srcPath} is planned twice: ${src} and ${where}`);
      const dst = seenDst.get(row.dstPath);
      if (dst) {
        throw new InputError(`destination ${row.dstPath} is planned twice: ${dst} and ${where}`);
      }
      seenSrc.set(row.srcPath, where);
      seenDst.set(row.dstPath, where);
      rows.push(row);
    });
  }
  return rows;
}

/** Reads the schedule. Throws {@linkcode InputError} when it is absent or malformed. */
export async function readSchedule(path: string): Promise<ScheduleRow[]> {
  let records: CsvRecord[];
  try {
    records = await readTable(path, SCHEDULE_COLUMNS);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new InputError(`${path}: no schedule yet; run 'deno task schedule' first`);
    }
    throw err;
  }
  const seenDst = new Set<string>();
  return records.map((r, i) => {
    const row = fromRecord(path, i + 2, r);
    if (seenDst.has(row.dstPath)) {
      throw new InputError(`${path}: row ${i + 2}: destination ${row.dstPath} appears twice`);
    }
    seenDst.add(row.dstPath);
    return { ...row, rank: wholeNumber(path, i + 2, "rank", r.rank) };
  });
}
