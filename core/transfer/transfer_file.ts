/**
 * One file of the run: open the source (never out of the images folder), copy it verified into
 * a temporary of its destination folder (retried on a mismatch), check its parquet footer from
 * the bytes the copy read, and publish it with `link(2)`, which never overwrites. Everything a rank's files share (the
 * libc binding, the open images folder, the destination folders, the buffers) is opened once
 * per run in a {@linkcode TransferContext}.
 * @module
 */

import { basename, dirname } from "node:path";
import type { Config, TransferSettings } from "../config.ts";
import { errorMessage } from "../errors.ts";
import { temporaryPath } from "../layout.ts";
import type { Md5Engine } from "../md5/engine.ts";
import type { ScheduleRow } from "../plan/plan_table.ts";
import type { VerificationRecord } from "../records/verification_log.ts";
import type { DirectoryHandle } from "../io/directory_handle.ts";
import type { FileHandle } from "../io/file_handle.ts";
import { AlreadyExistsError, IoError, SymlinkError } from "../io/io_errors.ts";
import { type Libc, openLibc } from "../io/libc.ts";
import { BufferBudget } from "./buffer_budget.ts";
import { DestinationFolders, DestinationRefusedError } from "./destination_folders.ts";
import { hashOpenFile } from "./hash_file.ts";
import {
  inspectParquetSource,
  InvalidParquetError,
  type ParquetByteSource,
} from "./parquet_check.ts";
import { SourceRefusedError, SourceTree } from "./source_tree.ts";
import { type ByteRange, copyVerified } from "./verified_copy.ts";

/**
 * Test hook: runs once a range of a temporary is on storage, before it is read back, with the
 * file's row, the temporary's path, the range and the attempt (0 first).
 */
export type BeforeReadBackHook = (
  row: ScheduleRow,
  tmpPath: string,
  range: ByteRange,
  attempt: number,
) => Promise<void> | void;

/** Test-only hooks of a run (the test driver `tests/fixtures/run_driver.ts` sets them). */
export interface RunnerHooks {
  /** Runs before a worker asks the queue for a file, before the time-budget check. */
  beforeTake?: () => Promise<void> | void;
  /**
   * Runs when a file is taken, before it starts, with the rank whose list it came from (a
   * driver pauses a rank with it).
   */
  beforeFile?: (row: ScheduleRow, from: number) => Promise<void> | void;
  /** Runs once, when the queue first has no file left for this rank. */
  queueDry?: () => Promise<void> | void;
  /** See {@linkcode BeforeReadBackHook}. */
  beforeReadBack?: BeforeReadBackHook;
  /**
   * The longest a rank copies before it posts its rate to the speed check (`speed_check.ts`,
   * default its `SAMPLE_MS`): the slow-rank driver sets `Infinity`, so that bytes alone decide.
   */
  speedSampleMs?: number;
}

/** Options of {@linkcode openTransferContext}. */
export interface TransferContextOptions {
  /** MD5 engine. */
  engine: Md5Engine;
  /**
   * MD5 engine for a file that is most of the rank's work left (more bytes than all its other
   * files together): one stream alone, hashed best off the rank's thread (libcrypto), while
   * `engine` (the SIMD one) pays off with several streams side by side.
   */
  loneEngine?: Md5Engine;
  /** Bytes of all the files the rank is to transfer in this run. */
  rankBytes: number;
  /** Writer token of this process, for temporary names. */
  token: string;
  /** Receives one line for the rank's log. */
  log: (line: string) => void;
  /** Folders that got a new entry not yet synced (the runner syncs them before its log). */
  unsyncedFolders: Set<string>;
  /** Test hook, see {@linkcode BeforeReadBackHook}. */
  beforeReadBack?: BeforeReadBackHook;
  /** Use `openat2` for sources where the kernel has it (default true). */
  openat2?: boolean;
}

/** What every file of a rank's run shares; open it with {@linkcode openTransferContext}. */
export interface TransferContext extends TransferContextOptions {
  /** The `data_transfer:` settings. */
  readonly settings: TransferSettings;
  /** The libc binding. */
  readonly libc: Libc;
  /** The images folder, open. */
  readonly sources: SourceTree;
  /** The destination folders, each opened once. */
  readonly folders: DestinationFolders;
  /** The rank's buffers. */
  readonly budget: BufferBudget;
  /** Log lines already written once (`noteOnce`). */
  readonly notes: Set<string>;
  /** Bytes of the rank's files not finished yet (those in flight included). */
  bytesLeft: number;
}

/** What {@linkcode transferFile} returns. */
export interface TransferOutcome {
  /** The record for the verification log. */
  record: VerificationRecord;
  /** Bytes read from storage for this file (source and read-back). */
  bytesRead: number;
}

/** Opens what the files of a run share; close it with {@linkcode closeTransferContext}. */
export async function openTransferContext(
  config: Config,
  options: TransferContextOptions,
): Promise<TransferContext> {
  const libc = openLibc();
  try {
    const t = config.transfer;
    return {
      ...options,
      settings: t,
      libc,
      sources: await SourceTree.open(libc, config.imagesFolder, { openat2: options.openat2 }),
      folders: new DestinationFolders(libc),
      budget: new BufferBudget(t.bufferSize, Math.max(1, Math.floor(t.buffers / 2))),
      notes: new Set(),
      bytesLeft: options.rankBytes,
    };
  } catch (err) {
    libc.close();
    throw err;
  }
}

/** Closes what {@linkcode openTransferContext} opened; no file may be in flight. */
export async function closeTransferContext(ctx: TransferContext): Promise<void> {
  await ctx.folders.close();
  ctx.sources.close();
  ctx.libc.close();
}

function noteOnce(ctx: TransferContext, key: string, line: string): void {
  if (ctx.notes.has(key)) return;
  ctx.notes.add(key);
  ctx.log(line);
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

function failed(row: ScheduleRow, reason: string, bytesRead = 0): TransferOutcome {
  return { record: record(row, { status: "failed", reason }), bytesRead };
}

/**
 * Copies, verifies and publishes one file; `onBytes` is told the bytes of each range once
 * written (a file counts up to its size again on a retry). Never throws for a per-file failure (a missing or
 * refused source, invalid parquet, a refused folder, a failed system call): the record says
 * why; anything else is a bug and is thrown.
 */
export async function transferFile(
  row: ScheduleRow,
  ctx: TransferContext,
  onBytes?: (bytes: number) => void,
): Promise<TransferOutcome> {
  const lone = ctx.loneEngine !== undefined && row.sizeBytes > ctx.bytesLeft - row.sizeBytes;
  const engine = lone ? ctx.loneEngine! : ctx.engine;
  try {
    return await ctx.folders.use(dirname(row.dstPath), async (dir) => {
      const src = await ctx.sources.openFile(row.srcPath);
      try {
        return await copyAndPublish(row, src, dir, ctx, engine, onBytes);
      } finally {
        src.close();
      }
    });
  } catch (err) {
    if (
      err instanceof IoError || err instanceof SourceRefusedError ||
      err instanceof DestinationRefusedError
    ) {
      return failed(row, err.message);
    }
    throw err;
  } finally {
    ctx.bytesLeft -= row.sizeBytes;
  }
}

/** Bytes at the end of a file kept as the copy passes for its parquet footer (most fit). */
const FOOTER_WINDOW = 64 * 1024;

/**
 * The first bytes and the last {@linkcode FOOTER_WINDOW} bytes of a source, kept as the copy
 * reads them, so that its parquet footer is checked without reading the source again.
 */
class SeenBytes {
  #head = new Uint8Array(0);
  #tail = new Uint8Array(0);
  #tailStart = 0;

  /** Keeps what it needs of one range (an `onSourceRange` callback). */
  see = (range: ByteRange, bytes: Uint8Array, size: number): void => {
    if (range.offset === 0) {
      this.#head = bytes.slice(0, 4);
      this.#tailStart = Math.max(0, size - FOOTER_WINDOW);
      this.#tail = new Uint8Array(size - this.#tailStart);
    }
    const from = Math.max(range.offset, this.#tailStart);
    const to = range.offset + range.length;
    if (from < to) {
      this.#tail.set(
        bytes.subarray(from - range.offset, to - range.offset),
        from - this.#tailStart,
      );
    }
  };

  /** The source's `size` bytes: what was kept, else read from `file` (a footer over 64 KiB). */
  source(file: FileHandle, size: number): ParquetByteSource {
    return {
      size,
      read: (offset, length) => {
        const end = offset + length;
        if (end <= this.#head.length) return Promise.resolve(this.#head.slice(offset, end));
        if (offset >= this.#tailStart && end <= this.#tailStart + this.#tail.length) {
          return Promise.resolve(this.#tail.slice(offset - this.#tailStart, end - this.#tailStart));
        }
        return file.readRange(offset, length);
      },
    };
  }
}

/**
 * The copy's descriptor for the read-back: the copy opened again with `O_DIRECT`, or, where
 * the file system refuses it, `writer` itself (said once in the log per dataset folder).
 */
async function openReadBack(
  dir: DirectoryHandle,
  name: string,
  writer: FileHandle,
  ctx: TransferContext,
): Promise<FileHandle> {
  const reader = await dir.openRead(name);
  if (reader.enableDirect()) return reader;
  reader.close();
  noteOnce(
    ctx,
    `buffered:${dirname(dir.path)}`,
    `read-back: ${dir.path} refuses O_DIRECT; copies there are read back after ` +
      `sync_file_range and posix_fadvise(DONTNEED) dropped them from the page cache`,
  );
  return writer;
}

async function copyAndPublish(
  row: ScheduleRow,
  src: FileHandle,
  dir: DirectoryHandle,
  ctx: TransferContext,
  engine: Md5Engine,
  onBytes: ((bytes: number) => void) | undefined,
): Promise<TransferOutcome> {
  const t = ctx.settings;
  src.enableDirect();
  const finalName = basename(row.dstPath);
  const tmpPath = temporaryPath(row.dstPath, ctx.token);
  const tmpName = basename(tmpPath);
  const hook = ctx.beforeReadBack;
  let reason = "";
  let bytesRead = 0;
  for (let attempt = 0; attempt <= t.retries; attempt++) {
    const writer = await dir.create(tmpName);
    const seen = new SeenBytes();
    let reader: FileHandle | undefined;
    let result;
    try {
      reader = await openReadBack(dir, tmpName, writer, ctx);
      result = await copyVerified(src, { writer, reader }, {
        libc: ctx.libc,
        engine,
        budget: ctx.budget,
        beforeReadBack: hook ? (range) => hook(row, tmpPath, range, attempt) : undefined,
        onSourceRange: seen.see,
        onWritten: onBytes,
      });
    } catch (err) {
      await dir.unlink(tmpName).catch(() => {});
      throw err;
    } finally {
      if (reader !== writer) reader?.close();
      writer.close();
    }
    bytesRead += result.bytesRead.source + result.bytesRead.destination;
    if (!result.ok) {
      reason = `verification failed after ${attempt + 1} attempt(s): ${result.mismatch}`;
      ctx.log(`attempt ${attempt + 1} of ${row.dstPath}: ${result.mismatch}`);
      await dir.unlink(tmpName).catch(() => {});
      continue;
    }
    // The copy equals the source as read, so the source's footer is the copy's.
    let numRows = -1;
    let schemaFingerprint = "";
    try {
      ({ numRows, schemaFingerprint } = await inspectParquetSource(
        row.srcPath,
        seen.source(src, result.sizeBytes),
      ));
    } catch (err) {
      if (!(err instanceof InvalidParquetError)) {
        await dir.unlink(tmpName).catch(() => {});
        throw err;
      }
      if (!t.allowInvalidParquet) {
        await dir.unlink(tmpName).catch(() => {});
        return failed(
          row,
          `${err.message}; not transferred (data_transfer.allow_invalid_parquet: true copies ` +
            `such files anyway)`,
          bytesRead,
        );
      }
    }
    try {
      await dir.link(tmpName, finalName);
    } catch (err) {
      await dir.unlink(tmpName).catch(() => {});
      if (!(err instanceof AlreadyExistsError)) throw err;
      const existing = await checkExisting(row, dir, result.md5Src, ctx, engine);
      return { record: existing.record, bytesRead: bytesRead + existing.bytesRead };
    }
    // Published and verified: a temporary that cannot be removed now (e.g. the file system
    // just went read-only) does not make the file fail; the next run's sweep removes it.
    await dir.unlink(tmpName).catch((err) =>
      ctx.log(`could not remove the temporary ${tmpPath} (${errorMessage(err)}); a later run will`)
    );
    ctx.unsyncedFolders.add(dir.path);
    return {
      record: record(row, {
        status: "verified",
        verifyMode: "md5",
        hashsumSrc: result.md5Src,
        hashsumDst: result.md5Dst ?? "",
        sizeBytes: result.sizeBytes,
        numRows,
        schemaFingerprint,
      }),
      bytesRead,
    };
  }
  return failed(row, reason, bytesRead);
}

/**
 * A file already sits at the final name: it counts as done when its MD5 equals the source's,
 * and is a conflict (never overwritten) otherwise.
 */
async function checkExisting(
  row: ScheduleRow,
  dir: DirectoryHandle,
  md5Src: string,
  ctx: TransferContext,
  engine: Md5Engine,
): Promise<TransferOutcome> {
  const notAFile = `conflict: ${row.dstPath} exists and is not a regular file; not overwritten`;
  let file: FileHandle;
  try {
    file = await dir.openRead(basename(row.dstPath));
  } catch (err) {
    if (err instanceof SymlinkError) return failed(row, notAFile);
    throw err;
  }
  try {
    if (!file.stat().isFile) return failed(row, notAFile);
    const dst = await hashOpenFile(file, engine, ctx.settings.bufferSize);
    if (dst.md5 === md5Src) {
      return {
        record: record(row, {
          status: "verified",
          verifyMode: "existing",
          hashsumSrc: md5Src,
          hashsumDst: dst.md5,
          sizeBytes: dst.sizeBytes,
        }),
        bytesRead: dst.sizeBytes,
      };
    }
    return {
      record: record(row, {
        status: "failed",
        hashsumSrc: md5Src,
        hashsumDst: dst.md5,
        reason: `conflict: ${row.dstPath} already exists with md5 ${dst.md5}, the source has ` +
          `${md5Src}; not overwritten`,
      }),
      bytesRead: dst.sizeBytes,
    };
  } finally {
    file.close();
  }
}
