/**
 * Checking a published file against its verification record: by one `lstat` (plain `verify`:
 * there, a regular file, of the logged size) or by reading it again (`verify --deep`: and of
 * the logged MD5).
 * @module
 */

import { hashFile } from "../transfer/hash_file.ts";
import type { Libc } from "../io/libc.ts";
import { errorMessage } from "../errors.ts";
import type { Md5Engine } from "../md5/engine.ts";
import { lstatOrNull } from "../io/lstat_or_null.ts";
import type { PublishedFile } from "./manifest.ts";
import { statSizes } from "./stat_sizes.ts";

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

/** How an entry is called in messages: `a folder`, `a symlink`, ... */
export function entryType(e: Deno.DirEntry | Deno.FileInfo): string {
  return e.isSymlink
    ? "a symlink"
    : e.isDirectory
    ? "a folder"
    : e.isFile
    ? "a file"
    : "a special file";
}

/**
 * Checks a published file with one `lstat`: a problem when it is missing, not a regular file,
 * or not of its logged size; `null` when it looks as recorded (its bytes are not read).
 */
async function statPublished(file: PublishedFile): Promise<DeepProblem | null> {
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
    return { kind: "size", path, detail: `${how}: ${info.size} bytes, ${file.sizeBytes} logged` };
  }
  return null;
}

/**
 * Checks every file with one `lstat` (synchronous calls, on a few threads for a long list) and
 * returns the problems, in order, each described by {@linkcode statPublished}.
 */
export async function statEveryPublished(files: readonly PublishedFile[]): Promise<DeepProblem[]> {
  const sizes = await statSizes(files.map((f) => f.dstPath));
  const problems: DeepProblem[] = [];
  for (let i = 0; i < files.length; i++) {
    if (sizes[i] === files[i].sizeBytes) continue;
    const problem = await statPublished(files[i]);
    if (problem !== null) problems.push(problem);
  }
  return problems;
}

/** Re-reads one published file; returns a problem, or null when it matches its record. */
export async function checkPublished(
  file: PublishedFile,
  engine: Md5Engine,
  bufferSize: number,
  libc: Libc,
): Promise<DeepProblem | null> {
  const seen = await statPublished(file);
  if (seen !== null) return seen;
  const path = file.dstPath;
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
