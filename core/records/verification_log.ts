/**
 * Verification logs: append-only CSV files in `data_transfer/verification/`, one writer per
 * file (a file per runner process), one line per finished file. Lines are synced in batches;
 * a crash loses at most the unsynced tail, whose copies a re-run finds published and checks.
 * @module
 */

import { join } from "node:path";
import { formatCsvLine, parseCsv } from "./csv.ts";
import { syncDirectory } from "../io/sync_directory.ts";
import { writeAll } from "../io/write_all.ts";
import type { VerifyMode } from "../config.ts";

/** How a file ended. */
export type RecordStatus = "verified" | "failed";

/** One line of a verification log. */
export interface VerificationRecord {
  /** Source path, as in the schedule. */
  srcPath: string;
  /** Destination path, as in the schedule. */
  dstPath: string;
  /** MD5 of the source, read while copying (empty when the source could not be read). */
  hashsumSrc: string;
  /** MD5 of the destination read back (`md5` mode) or the source's when bytes matched. */
  hashsumDst: string;
  /** Bytes of the file. */
  sizeBytes: number;
  /** The check that was done: `md5`, `bytes`, or `existing` for a file found published. */
  verifyMode: VerifyMode | "existing";
  /** ISO 8601 time of the record. */
  verifiedAt: string;
  /** `verified` or `failed`. */
  status: RecordStatus;
  /** Why it failed (empty when verified). */
  reason: string;
  /** Rows of the parquet file (-1 when not known). */
  numRows: number;
  /** Fingerprint of the parquet schema (`inspectParquet`), or "" when not known. */
  schemaFingerprint: string;
}

/** Columns of a verification log. */
export const VERIFICATION_COLUMNS = [
  "src_path",
  "dst_path",
  "hashsum_src",
  "hashsum_dst",
  "size_bytes",
  "verify_mode",
  "verified_at",
  "status",
  "reason",
  "num_rows",
  "schema_fingerprint",
] as const;

function toRecord(r: VerificationRecord): Record<string, string> {
  return {
    src_path: r.srcPath,
    dst_path: r.dstPath,
    hashsum_src: r.hashsumSrc,
    hashsum_dst: r.hashsumDst,
    size_bytes: String(r.sizeBytes),
    verify_mode: r.verifyMode,
    verified_at: r.verifiedAt,
    status: r.status,
    reason: r.reason.replace(/[\r\n]+/g, " "),
    num_rows: String(r.numRows),
    schema_fingerprint: r.schemaFingerprint,
  };
}

/** An open verification log of one writer. */
export class VerificationLog {
  #file: Deno.FsFile;
  #unsynced = 0;
  #syncEvery: number;
  #beforeSync: () => Promise<void>;
  #encoder = new TextEncoder();
  /** Appends and syncs, one after another: no record is written while a sync runs. */
  #queue: Promise<void> = Promise.resolve();
  /** Path of the log file. */
  readonly path: string;

  private constructor(
    path: string,
    file: Deno.FsFile,
    syncEvery: number,
    beforeSync: () => Promise<void>,
  ) {
    this.path = path;
    this.#file = file;
    this.#syncEvery = syncEvery;
    this.#beforeSync = beforeSync;
  }

  /**
   * Creates a new log in `folder` named `<name>.csv` (never an existing one: one writer per
   * file) and writes its header durably. `beforeSync` runs before each sync of records, so
   * that what they claim (a published file's folder entry) is durable before they are.
   */
  static async create(
    folder: string,
    name: string,
    syncEvery: number,
    beforeSync: () => Promise<void> = () => Promise.resolve(),
  ): Promise<VerificationLog> {
    await Deno.mkdir(folder, { recursive: true });
    const path = join(folder, `${name}.csv`);
    const file = await Deno.open(path, { write: true, append: true, createNew: true });
    const log = new VerificationLog(path, file, syncEvery, beforeSync);
    await log.#write(VERIFICATION_COLUMNS.join(",") + "\n");
    await file.syncData();
    await syncDirectory(folder);
    return log;
  }

  async #write(text: string): Promise<void> {
    await writeAll(this.#file, this.#encoder.encode(text));
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  async #syncNow(): Promise<void> {
    if (this.#unsynced === 0) return;
    this.#unsynced = 0;
    await this.#beforeSync();
    await this.#file.syncData();
  }

  /** Appends a record; syncs once every `syncEvery` records. */
  append(record: VerificationRecord): Promise<void> {
    return this.#serial(async () => {
      await this.#write(formatCsvLine(VERIFICATION_COLUMNS, toRecord(record)));
      if (++this.#unsynced >= this.#syncEvery) await this.#syncNow();
    });
  }

  /** Makes every appended record durable. */
  sync(): Promise<void> {
    return this.#serial(() => this.#syncNow());
  }

  /** Syncs and closes the log. */
  async close(): Promise<void> {
    await this.sync();
    this.#file.close();
  }
}

/** What {@linkcode readVerificationLogs} found. */
export interface VerificationState {
  /** Latest record per destination path (a later `verified` wins over an earlier failure). */
  byDst: Map<string, VerificationRecord>;
  /** Logs read. */
  files: string[];
  /** Lines that did not parse (`file:line`), e.g. torn by a crash; they are ignored. */
  badLines: string[];
}

function fromRecord(r: Record<string, string>): VerificationRecord {
  return {
    srcPath: r.src_path,
    dstPath: r.dst_path,
    hashsumSrc: r.hashsum_src,
    hashsumDst: r.hashsum_dst,
    sizeBytes: Number(r.size_bytes),
    verifyMode: r.verify_mode as VerificationRecord["verifyMode"],
    verifiedAt: r.verified_at,
    status: r.status as RecordStatus,
    reason: r.reason ?? "",
    numRows: r.num_rows === undefined || r.num_rows === "" ? -1 : Number(r.num_rows),
    schemaFingerprint: r.schema_fingerprint ?? "",
  };
}

/** Reads every verification log of `folder` (an absent folder is an empty state). */
export async function readVerificationLogs(folder: string): Promise<VerificationState> {
  const state: VerificationState = { byDst: new Map(), files: [], badLines: [] };
  let names: string[] = [];
  try {
    for await (const e of Deno.readDir(folder)) {
      if (e.isFile && e.name.endsWith(".csv") && !e.name.startsWith(".")) names.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return state;
    throw err;
  }
  names = names.sort();
  const all: VerificationRecord[] = [];
  for (const name of names) {
    const path = join(folder, name);
    state.files.push(path);
    const parsed = parseCsv(await Deno.readTextFile(path));
    for (const n of parsed.badLines) state.badLines.push(`${path}:${n}`);
    if (parsed.tornTail) state.badLines.push(`${path}:last line (torn)`);
    for (const rec of parsed.records) {
      const r = fromRecord(rec);
      if (r.status === "verified" || r.status === "failed") all.push(r);
      else state.badLines.push(`${path}: unknown status ${JSON.stringify(rec.status)}`);
    }
  }
  // One pass instead of a sort by time: a verified record beats a failure; between two of
  // the same kind the later wins (ties: the later file, then the later line).
  for (const r of all) {
    const prev = state.byDst.get(r.dstPath);
    if (
      prev === undefined ||
      (prev.status === r.status ? r.verifiedAt >= prev.verifiedAt : r.status === "verified")
    ) state.byDst.set(r.dstPath, r);
  }
  return state;
}
