/**
 * What the dataset holds, written by the verifier: `manifest.parquet` in the tool's folder
 * (one row per published file) and `_MD5SUMS` at the root of each destination folder, in the
 * format `md5sum -c` reads.
 * @module
 */

import { basename, dirname, join } from "node:path";
import {
  Field,
  Int64,
  makeData,
  makeVector,
  Schema,
  Table as ArrowTable,
  tableToIPC,
  TimestampMillisecond,
  Utf8,
} from "apache-arrow";
import {
  Compression,
  Table as WasmTable,
  writeParquet,
  WriterPropertiesBuilder,
} from "parquet-wasm";
import type { Config } from "../config.ts";
import { writeFileAtomic } from "../records/atomic_file.ts";
import type { FileKind } from "../layout.ts";

/** One published (verified) file of the dataset. */
export interface PublishedFile {
  /** Server folder name (the part after `server=`; the hive `server` column of the dataset). */
  server: string;
  /** `successes` or `errors`. */
  kind: FileKind;
  /** Source path. */
  srcPath: string;
  /** Destination path (absolute). */
  dstPath: string;
  /** Bytes. */
  sizeBytes: number;
  /** MD5 of the published bytes, as logged. */
  md5: string;
  /** Rows of the parquet file, or -1 when not known. */
  numRows: number;
  /** When it was verified (ISO 8601). */
  verifiedAt: string;
}

/** File name of the checksum list at the root of each destination folder. */
export const MD5SUMS_NAME = "_MD5SUMS";

/**
 * Columns of `manifest.parquet`: `server`, `kind`, `src_path`, `dst_path` (strings),
 * `size_bytes` (int64), `md5` (string, 32 hex digits), `num_rows` (int64, null when not
 * known), `verified_at` (timestamp in ms, UTC). Rows are sorted by `dst_path`.
 */
export const MANIFEST_COLUMNS = [
  "server",
  "kind",
  "src_path",
  "dst_path",
  "size_bytes",
  "md5",
  "num_rows",
  "verified_at",
] as const;

const MANIFEST_SCHEMA = new Schema([
  new Field("server", new Utf8(), false),
  new Field("kind", new Utf8(), false),
  new Field("src_path", new Utf8(), false),
  new Field("dst_path", new Utf8(), false),
  new Field("size_bytes", new Int64(), false),
  new Field("md5", new Utf8(), false),
  new Field("num_rows", new Int64(), true),
  new Field("verified_at", new TimestampMillisecond("UTC"), true),
]);

function byDst(a: PublishedFile, b: PublishedFile): number {
  return a.dstPath < b.dstPath ? -1 : a.dstPath > b.dstPath ? 1 : 0;
}

/** `files` sorted by destination path: the same array when it already is (checked in O(n)). */
function sortedByDestination(files: readonly PublishedFile[]): readonly PublishedFile[] {
  for (let i = 1; i < files.length; i++) {
    if (files[i - 1].dstPath > files[i].dstPath) return files.slice().sort(byDst);
  }
  return files;
}

// Arrow vectors built directly from typed arrays: `vectorFromArray` takes seconds on 10^5 rows.

function utf8Vector(values: readonly string[]) {
  const encoder = new TextEncoder();
  const offsets = new Int32Array(values.length + 1);
  const joined = values.join("");
  let data: Uint8Array;
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(joined)) {
    // ASCII (the usual case): one encode call, offsets from string lengths.
    data = encoder.encode(joined);
    for (let i = 0; i < values.length; i++) offsets[i + 1] = offsets[i] + values[i].length;
  } else {
    data = new Uint8Array(joined.length * 3);
    let at = 0;
    for (let i = 0; i < values.length; i++) {
      at += encoder.encodeInto(values[i], data.subarray(at)).written;
      offsets[i + 1] = at;
    }
    data = data.subarray(0, at);
  }
  return makeVector(
    makeData({ type: new Utf8(), length: values.length, valueOffsets: offsets, data }),
  );
}

/** 64-bit values with a validity bitmap (null where `values[i]` is null). */
function int64Parts(values: readonly (number | null)[]) {
  const data = new BigInt64Array(values.length);
  const validity = new Uint8Array((values.length + 7) >> 3);
  let nullCount = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null) nullCount++;
    else {
      data[i] = BigInt(v);
      validity[i >> 3] |= 1 << (i & 7);
    }
  }
  return { length: values.length, data, nullCount, nullBitmap: nullCount > 0 ? validity : null };
}

/** Encodes published files as a zstd-compressed parquet file (rows sorted by `dst_path`). */
function encodeManifest(files: readonly PublishedFile[]): Uint8Array {
  const rows = sortedByDestination(files);
  const time = (iso: string) => {
    const ms = Date.parse(iso);
    return Number.isFinite(ms) ? ms : null;
  };
  const table = new ArrowTable(MANIFEST_SCHEMA, {
    server: utf8Vector(rows.map((r) => r.server)),
    kind: utf8Vector(rows.map((r) => r.kind)),
    src_path: utf8Vector(rows.map((r) => r.srcPath)),
    dst_path: utf8Vector(rows.map((r) => r.dstPath)),
    size_bytes: makeVector(
      makeData({ type: new Int64(), ...int64Parts(rows.map((r) => r.sizeBytes)) }),
    ),
    md5: utf8Vector(rows.map((r) => r.md5)),
    num_rows: makeVector(
      makeData({
        type: new Int64(),
        ...int64Parts(rows.map((r) => (r.numRows >= 0 ? r.numRows : null))),
      }),
    ),
    verified_at: makeVector(
      makeData({
        type: new TimestampMillisecond("UTC"),
        ...int64Parts(rows.map((r) => time(r.verifiedAt))),
      }),
    ),
  });
  const wasm = WasmTable.fromIPCStream(tableToIPC(table, "stream"));
  const props = new WriterPropertiesBuilder()
    .setCompression(Compression.ZSTD)
    .setCreatedBy("data_transfer verify")
    .build();
  return writeParquet(wasm, props);
}

/** Writes `manifest.parquet` atomically at `path`. */
export async function writeManifest(path: string, files: readonly PublishedFile[]): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, encodeManifest(files));
}

/** One line of an `md5sum` list, escaped the way GNU md5sum does for odd names. */
export function md5sumLine(md5: string, name: string): string {
  if (/[\\\n\r]/.test(name)) {
    const escaped = name.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll("\r", "\\r");
    return `\\${md5}  ${escaped}\n`;
  }
  return `${md5}  ${name}\n`;
}

/**
 * Formats the `_MD5SUMS` of destination folder `root`: one line per file of `files` that lies
 * under it, `<md5>  <path relative to root>`, sorted by path.
 */
export function formatMd5Sums(root: string, files: readonly PublishedFile[]): string {
  const prefix = root.endsWith("/") ? root : root + "/";
  const parts: string[] = [];
  for (const f of sortedByDestination(files)) {
    if (f.dstPath.startsWith(prefix)) parts.push(md5sumLine(f.md5, f.dstPath.slice(prefix.length)));
  }
  return parts.join("");
}

/** The two destination folders of a config (the config keeps them apart). */
export function destinationRoots(config: Config): string[] {
  return [config.dstImageFolder, config.dstErrorFolder];
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isDirectory;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Writes `_MD5SUMS` atomically at the root of each destination folder, listing the published
 * files under it. A destination folder that does not exist and would get an empty list is
 * left alone (never created). Returns the paths written.
 */
export async function writeMd5Sums(
  config: Config,
  files: readonly PublishedFile[],
): Promise<string[]> {
  const written: string[] = [];
  for (const root of destinationRoots(config)) {
    const text = formatMd5Sums(root, files);
    if (text === "" && !(await isDirectory(root))) continue;
    await Deno.mkdir(root, { recursive: true });
    const path = join(root, MD5SUMS_NAME);
    await writeFileAtomic(path, text);
    written.push(path);
  }
  return written;
}

/** Whether `name` is a leftover of an interrupted {@linkcode writeMd5Sums} (atomic temporary). */
export function isMd5SumsTemporary(name: string): boolean {
  return basename(name).startsWith(`.${MD5SUMS_NAME}.tmp-`);
}
