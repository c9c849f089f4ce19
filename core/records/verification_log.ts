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

/**
 * What a record says of a destination: `verified` (copied and checked, or found published with
 * the source's MD5), `failed` (with a reason), or `invalidated`: a file verified before was
 * found missing, truncated or altered by `verify --deep --repair`, so it is to be copied again.
 */
export type RecordStatus = "verified" | "failed" | "invalidated";

/** Every {@linkcode RecordStatus}. */
export const RECORD_STATUSES: readonly RecordStatus[] = ["verified", "failed", "invalidated"];

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
  /**
   * The check that was done: `md5`, `bytes`, `existing` for a file found published, or `deep`
   * for an invalidation by `verify --deep --repair`.
   */
  verifyMode: VerifyMode | "existing" | "deep";
  /** ISO 8601 time of the record. */
  verifiedAt: string;
  /** `verified`, `failed` or `invalidated`. */
  status: RecordStatus;
  /** Why it failed or was invalidated (empty when verified). */
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
  /**
   * The record that stands for each destination path (see {@linkcode standingRecord}): its
   * status is what the destination is now. Only `verified` means done.
   */
  byDst: Map<string, VerificationRecord>;
  /** Logs read. */
  files: string[];
  /** Lines that did not parse (`file:line`), e.g. torn by a crash; they are ignored. */
  badLines: string[];
}

/** The latest record of each status for one destination (ties: the later file, then line). */
interface RecordsOfOne {
  /** Latest `verified` record. */
  verified?: VerificationRecord;
  /** Latest `failed` record. */
  failed?: VerificationRecord;
  /** Latest `invalidated` record. */
  invalidated?: VerificationRecord;
}

/**
 * The record that stands for one destination. An invalidation voids every record before it;
 * of the records after it (or of all, without one), a verification beats a failure whatever
 * their order (a second runner that failed on a file another had published does not undo
 * it); an invalidation with nothing after it stands, so the file is left to copy again.
 */
function standingRecord(of: RecordsOfOne): VerificationRecord | undefined {
  const cut = of.invalidated?.verifiedAt;
  const after = (r: VerificationRecord | undefined) =>
    r !== undefined && (cut === undefined || r.verifiedAt > cut) ? r : undefined;
  return after(of.verified) ?? after(of.failed) ?? of.invalidated;
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
  const latest = new Map<string, RecordsOfOne>();
  for (const name of names) {
    const path = join(folder, name);
    state.files.push(path);
    const parsed = parseCsv(await Deno.readTextFile(path));
    for (const n of parsed.badLines) state.badLines.push(`${path}:${n}`);
    if (parsed.tornTail) state.badLines.push(`${path}:last line (torn)`);
    for (const rec of parsed.records) {
      const r = fromRecord(rec);
      if (!RECORD_STATUSES.includes(r.status)) {
        state.badLines.push(`${path}: unknown status ${JSON.stringify(rec.status)}`);
        continue;
      }
      // Per status the later record wins (ties: the later file, then the later line).
      const of = latest.get(r.dstPath) ?? {};
      const prev = of[r.status];
      if (prev === undefined || r.verifiedAt >= prev.verifiedAt) of[r.status] = r;
      latest.set(r.dstPath, of);
    }
  }
  for (const [dst, of] of latest) state.byDst.set(dst, standingRecord(of)!);
  return state;
}
