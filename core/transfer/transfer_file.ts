/**
 * One file of the run: copy (read once while hashed), verify, publish under its final name by
 * `link(2)`, which never overwrites, and the record that says so. A file already at the final
 * name is done when it has the source's MD5 and a conflict otherwise.
 * @module
 */

import { dirname } from "node:path";
import type { Config } from "../config.ts";
import { errorMessage } from "../errors.ts";
import { temporaryPath } from "../layout.ts";
import { isWithin } from "../is_within.ts";
import type { ScheduleRow } from "../plan/plan_table.ts";
import type { VerificationRecord } from "../records/verification_log.ts";
import { BufferPool, copyAndHash, hashFile, TransferIoError } from "./copy_file.ts";
import type { Md5Engine } from "../md5/engine.ts";
import { inspectParquet, InvalidParquetError } from "./parquet_check.ts";
import { lstatOrNull } from "../io/lstat_or_null.ts";

/** Test-only hooks, given by the test driver `tests/fixtures/run_driver.ts`. */
export interface RunnerHooks {
  /** Runs when a file is taken, before it is copied (tests pause a rank with it). */
  beforeFile?: (row: ScheduleRow) => Promise<void> | void;
  /** Runs after a temporary was written and synced, before verification. */
  afterWrite?: (row: ScheduleRow, tmpPath: string, attempt: number) => Promise<void> | void;
}

/** What the per-file code needs of the rank besides the config. */
export interface TransferOptions {
  /** MD5 engine. */
  engine: Md5Engine;
  /** Writes one line to the rank's log (not shown to the user). */
  log: (line: string) => void;
  /** Test-only hooks. */
  hooks?: RunnerHooks;
}

/**
 * An error of a file-system call about one file: Deno's `Deno.errors.*` classes and its plain
 * errors all carry the system's code (`ENOENT`, `EROFS`, `ENOSPC`, ...).
 */
function isSystemError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === "string" && /^E[A-Z0-9]+$/.test(code);
}

function record(
  row: ScheduleRow,
  fields: Partial<VerificationRecord> & Pick<VerificationRecord, "status">,
): VerificationRecord {
  return {
    srcPath: row.srcPath,
    dstPath: row.dstPath,
    hashsumSrc: "",
    hashsumDst: "",
    sizeBytes: row.sizeBytes,
    verifyMode: "md5",
    verifiedAt: new Date().toISOString(),
    reason: "",
    numRows: -1,
    schemaFingerprint: "",
    ...fields,
  };
}

/**
 * A file already sits at the final name: it counts as done when its MD5 equals the
 * source's, and is a conflict (never overwritten) otherwise.
 */
async function checkExisting(
  row: ScheduleRow,
  engine: Md5Engine,
  pool: BufferPool,
  md5Src: string | null,
): Promise<{ record: VerificationRecord; bytesRead: number }> {
  const info = await Deno.lstat(row.dstPath);
  if (!info.isFile) {
    return {
      record: record(row, {
        status: "failed",
        reason: `conflict: ${row.dstPath} exists and is not a regular file; not overwritten`,
      }),
      bytesRead: 0,
    };
  }
  const dst = await hashFile(row.dstPath, { engine, pool });
  let read = dst.sizeBytes;
  let srcMd5 = md5Src;
  if (srcMd5 === null) {
    const src = await hashFile(row.srcPath, { engine, pool });
    srcMd5 = src.md5;
    read += src.sizeBytes;
  }
  if (srcMd5 === dst.md5) {
    return {
      record: record(row, {
        status: "verified",
        verifyMode: "existing",
        hashsumSrc: srcMd5,
        hashsumDst: dst.md5,
        sizeBytes: dst.sizeBytes,
      }),
      bytesRead: read,
    };
  }
  return {
    record: record(row, {
      status: "failed",
      hashsumSrc: srcMd5,
      hashsumDst: dst.md5,
      reason: `conflict: ${row.dstPath} already exists with md5 ${dst.md5}, the source has ` +
        `${srcMd5}; not overwritten`,
    }),
    bytesRead: read,
  };
}

/** What every transfer of a rank shares. */
export interface TransferContext {
  /** The tool's configuration. */
  config: Config;
  /** The rank's MD5 engine, its log (not shown to the user) and the test hooks. */
  options: TransferOptions;
  /** Writer token of this process, for temporary names. */
  token: string;
  /** The images folder with every symlink resolved. */
  realImages: string;
  /** Folders with a new entry not yet synced (synced before the log's next sync). */
  unsyncedFolders: Set<string>;
  /**
   * Receives the bytes of the copy as they are written (retries count again), so that the
   * progress counts a large file while it is in flight, not only once it is done.
   */
  onBytes?: (bytes: number) => void;
}

/**
 * Copies, verifies and publishes one file; never throws for a per-file failure (a file-system
 * error about that file), which it returns as a failed record with the system's reason.
 */
export async function transferOne(
  row: ScheduleRow,
  { config, options, token, realImages, unsyncedFolders, onBytes }: TransferContext,
  pool: BufferPool,
): Promise<{ record: VerificationRecord; bytesRead: number }> {
  const t = config.transfer;
  const engine = options.engine;
  const folder = dirname(row.dstPath);
  try {
    const folderInfo = await lstatOrNull(folder);
    if (folderInfo?.isSymlink) {
      return {
        record: record(row, {
          status: "failed",
          reason: `destination folder ${folder} is a symlink: refused (never followed)`,
        }),
        bytesRead: 0,
      };
    }
    if (!folderInfo) await Deno.mkdir(folder, { recursive: true });
    if (await lstatOrNull(row.dstPath)) return await checkExisting(row, engine, pool, null);
    const source = await lstatOrNull(row.srcPath);
    if (!source?.isFile) {
      const what = source ? "is not a regular file any more" : "is gone (ENOENT: no such file)";
      return {
        record: record(row, { status: "failed", reason: `source ${row.srcPath} ${what}` }),
        bytesRead: 0,
      };
    }
    // The schedule's paths are checked by name; a symlinked folder on the way could still
    // lead outside the images folder, so the resolved path is checked too.
    const realSrc = await Deno.realPath(row.srcPath);
    if (!isWithin(realImages, realSrc)) {
      return {
        record: record(row, {
          status: "failed",
          reason: `source ${row.srcPath} resolves to ${realSrc}, outside the images folder ` +
            `${realImages}: refused (symlinks are never followed out of it)`,
        }),
        bytesRead: 0,
      };
    }
    let numRows = -1;
    let schemaFingerprint = "";
    try {
      ({ numRows, schemaFingerprint } = await inspectParquet(row.srcPath));
    } catch (err) {
      if (!(err instanceof InvalidParquetError)) throw err;
      if (!t.allowInvalidParquet) {
        return {
          record: record(row, {
            status: "failed",
            reason: `${err.message}; not transferred (data_transfer.allow_invalid_parquet: ` +
              `true copies such files anyway)`,
          }),
          bytesRead: 0,
        };
      }
    }
    let reason = "";
    let bytesRead = 0;
    for (let attempt = 0; attempt <= t.retries; attempt++) {
      const tmp = temporaryPath(row.dstPath, token);
      const hook = options.hooks?.afterWrite;
      const result = await copyAndHash(row.srcPath, tmp, {
        engine,
        verify: t.verifyMode,
        pool,
        dropCache: t.dropCache,
        afterWrite: hook ? (p) => hook(row, p, attempt) : undefined,
        onBytes,
      });
      bytesRead += result.bytesRead.source + result.bytesRead.destination;
      if (!result.ok) {
        reason = `verification failed after ${attempt + 1} attempt(s): ${result.mismatch}`;
        options.log(`attempt ${attempt + 1} of ${row.dstPath}: ${result.mismatch}`);
        await Deno.remove(tmp).catch(() => {});
        continue;
      }
      if (numRows >= 0) {
        const copied = await inspectParquet(tmp).catch((e) => e as Error);
        const differs = copied instanceof Error
          ? `its footer does not decode (${copied.message})`
          : copied.numRows !== numRows
          ? `${copied.numRows} rows, the source ${numRows}`
          : copied.schemaFingerprint !== schemaFingerprint
          ? "another schema than the source"
          : null;
        if (differs !== null) {
          await Deno.remove(tmp).catch(() => {});
          reason = `the copy's parquet footer differs: ${differs}`;
          continue;
        }
      }
      try {
        await Deno.link(tmp, row.dstPath);
      } catch (err) {
        await Deno.remove(tmp).catch(() => {});
        if (err instanceof Deno.errors.AlreadyExists) {
          const existing = await checkExisting(row, engine, pool, result.md5Src);
          return { record: existing.record, bytesRead: bytesRead + existing.bytesRead };
        }
        throw err;
      }
      // Published and verified: a temporary that cannot be removed now (e.g. the file system
      // just went read-only) does not make the file fail; the next run's sweep removes it.
      await Deno.remove(tmp).catch((err) =>
        options.log(
          `could not remove the temporary ${tmp} (${errorMessage(err)}); a later run will`,
        )
      );
      unsyncedFolders.add(folder);
      return {
        record: record(row, {
          status: "verified",
          verifyMode: t.verifyMode,
          hashsumSrc: result.md5Src,
          hashsumDst: result.md5Dst ?? "",
          sizeBytes: result.sizeBytes,
          numRows,
          schemaFingerprint,
        }),
        bytesRead,
      };
    }
    return { record: record(row, { status: "failed", reason }), bytesRead };
  } catch (err) {
    if (err instanceof TransferIoError || isSystemError(err)) {
      return { record: record(row, { status: "failed", reason: errorMessage(err) }), bytesRead: 0 };
    }
    throw err;
  }
}
