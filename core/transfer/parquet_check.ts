/**
 * Cheap structural check of a parquet file: reads the 4-byte magic at both ends and the footer
 * (thrift `FileMetaData`) only, never the column data, so its cost does not grow with the file.
 * @module
 */

// The footer parser alone: the package's index loads every reader and codec (20 more modules
// at every start of a rank).
import { parquetMetadata } from "hyparquet/src/metadata.js";
import type { FileMetaData, SchemaElement } from "hyparquet";
import { createHash } from "node:crypto";
import { errorMessage, InputError } from "../errors.ts";

/** One node of a parquet schema (the root excluded), in schema order. */
export interface ParquetColumnInfo {
  /** Path from the root, e.g. `["original_size", "list", "element"]`. */
  path: string[];
  /** Physical type (`BYTE_ARRAY`, `INT64`, …), or `null` for a group node. */
  physicalType: string | null;
  /** Logical type, e.g. `STRING`, `INTEGER(32,unsigned)`, `LIST` (legacy types translated). */
  logicalType: string | null;
  /** `REQUIRED`, `OPTIONAL` or `REPEATED`. */
  repetition: string;
  /** Whether the node is a leaf (a column with data). */
  leaf: boolean;
}

/** What {@linkcode inspectParquet} learns from a parquet footer. */
export interface ParquetInfo {
  /** The inspected path. */
  path: string;
  /** File size in bytes. */
  sizeBytes: number;
  /** Rows in the file (`FileMetaData.num_rows`). */
  numRows: number;
  /** Number of row groups. */
  numRowGroups: number;
  /** Length of the thrift footer in bytes. */
  footerBytes: number;
  /** Writer identification, if the file has one. */
  createdBy: string | null;
  /**
   * SHA-256 hex of the canonical schema text (see {@linkcode canonicalSchema}): equal for files
   * with the same column paths, physical and logical types and repetitions, whatever the writer.
   */
  schemaFingerprint: string;
  /** Every schema node below the root, in schema order. */
  columns: ParquetColumnInfo[];
}

/** The file is not a readable parquet file (empty, truncated, not parquet, bad footer). */
export class InvalidParquetError extends InputError {
  /** The offending path. */
  readonly path: string;
  /** Why it is rejected, e.g. `too small (7 bytes)`. */
  readonly reason: string;
  /** Creates the error; the message names the path and the reason. */
  constructor(path: string, reason: string) {
    super(`${path}: not a valid parquet file: ${reason}`);
    this.path = path;
    this.reason = reason;
  }
}

const MAGIC = 0x31524150; // "PAR1" read as little-endian uint32
const ENCRYPTED_MAGIC = 0x45524150; // "PARE"
/** Smallest possible parquet file: magic, footer length, magic (an empty footer is invalid). */
const MIN_SIZE = 12;

/**
 * Random access to the bytes of a file whose footer is checked: its size and positional reads.
 * A read returns exactly `length` bytes, or fewer when the file ends first.
 */
export interface ParquetByteSource {
  /** Size of the file in bytes. */
  readonly size: number;
  /** Reads `length` bytes at `offset` (fewer only at the end of the file). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/**
 * Checks `path` is a complete parquet file and decodes its footer, reading only the first
 * 4 bytes and the last `footer + 8` bytes.
 *
 * @throws {InvalidParquetError} the path is missing, not a regular file, too small, lacks
 *   either magic, has an impossible footer length or a footer that does not decode.
 */
export async function inspectParquet(path: string): Promise<ParquetInfo> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InvalidParquetError(path, "no such file");
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new InvalidParquetError(path, `cannot open: ${errorMessage(e)}`);
    }
    throw e;
  }
  try {
    const stat = await file.stat();
    if (!stat.isFile) {
      throw new InvalidParquetError(
        path,
        stat.isDirectory ? "is a directory" : "not a regular file",
      );
    }
    return await inspectParquetSource(path, {
      size: stat.size,
      read: async (offset, length) => {
        await file.seek(offset, Deno.SeekMode.Start);
        const buf = new Uint8Array(length);
        let done = 0;
        while (done < length) {
          const n = await file.read(buf.subarray(done));
          if (n === null) break;
          done += n;
        }
        return buf.subarray(0, done);
      },
    });
  } finally {
    file.close();
  }
}

/**
 * {@linkcode inspectParquet} on a file already open (a regular file of `source.size` bytes):
 * reads its first 4 and last `footer + 8` bytes through `source`; `path` names it in errors.
 *
 * @throws {InvalidParquetError} as {@linkcode inspectParquet}.
 */
export async function inspectParquetSource(
  path: string,
  source: ParquetByteSource,
): Promise<ParquetInfo> {
  const size = source.size;
  if (size < MIN_SIZE) {
    throw new InvalidParquetError(path, `too small (${size} bytes; a parquet file has ≥ 12)`);
  }
  const readAt = async (offset: number, length: number) => {
    const bytes = await source.read(offset, length);
    if (bytes.length < length) {
      throw new InvalidParquetError(
        path,
        `file shrank while being read (end at ${offset + bytes.length})`,
      );
    }
    return bytes;
  };
  const head = await readAt(0, 4);
  if (u32(head, 0) !== MAGIC) {
    throw new InvalidParquetError(path, "missing PAR1 magic at start — not a parquet file");
  }
  const tail = await readAt(size - 8, 8);
  const endMagic = u32(tail, 4);
  if (endMagic === ENCRYPTED_MAGIC) {
    throw new InvalidParquetError(path, "encrypted footer (PARE) is not supported");
  }
  if (endMagic !== MAGIC) {
    throw new InvalidParquetError(path, "missing PAR1 magic at end — truncated?");
  }
  const footerBytes = u32(tail, 0);
  if (footerBytes === 0 || footerBytes > size - MIN_SIZE) {
    throw new InvalidParquetError(
      path,
      `footer length ${footerBytes} does not fit in a ${size}-byte file — corrupt?`,
    );
  }
  const footer = new Uint8Array(footerBytes + 8);
  footer.set(await readAt(size - 8 - footerBytes, footerBytes), 0);
  footer.set(tail, footerBytes);

  let meta: FileMetaData;
  try {
    meta = parquetMetadata(footer.buffer);
  } catch (e) {
    throw new InvalidParquetError(path, `footer does not decode: ${errorMessage(e)}`);
  }
  return await describe(path, size, footerBytes, meta);
}

async function describe(
  path: string,
  size: number,
  footerBytes: number,
  meta: FileMetaData,
): Promise<ParquetInfo> {
  if (!Array.isArray(meta.schema) || meta.schema.length === 0) {
    throw new InvalidParquetError(path, "footer does not decode: empty schema");
  }
  const numRows = Number(meta.num_rows);
  if (!Number.isSafeInteger(numRows) || numRows < 0) {
    throw new InvalidParquetError(path, `footer does not decode: bad row count ${meta.num_rows}`);
  }
  let groupRows = 0;
  for (const group of meta.row_groups) groupRows += Number(group.num_rows);
  if (groupRows !== numRows) {
    throw new InvalidParquetError(
      path,
      `footer is inconsistent: row groups hold ${groupRows} rows but num_rows is ${numRows}`,
    );
  }
  let columns: ParquetColumnInfo[];
  try {
    columns = flattenSchema(meta.schema);
  } catch (e) {
    throw new InvalidParquetError(path, `footer does not decode: ${errorMessage(e)}`);
  }
  return {
    path,
    sizeBytes: size,
    numRows,
    numRowGroups: meta.row_groups.length,
    footerBytes,
    createdBy: meta.created_by ?? null,
    schemaFingerprint: await schemaFingerprint(columns),
    columns,
  };
}

/** Turns the flat, depth-first thrift schema list into nodes with full paths. */
function flattenSchema(schema: readonly SchemaElement[]): ParquetColumnInfo[] {
  const out: ParquetColumnInfo[] = [];
  let index = 1;
  const walk = (prefix: string[], children: number): void => {
    for (let c = 0; c < children; c++) {
      const element = schema[index++];
      if (element === undefined) throw new Error("schema ends before its declared children");
      const path = [...prefix, element.name];
      const groupChildren = element.num_children ?? 0;
      out.push({
        path,
        physicalType: element.type ?? null,
        logicalType: logicalName(element),
        repetition: element.repetition_type ?? "REQUIRED",
        leaf: groupChildren === 0 && element.type !== undefined,
      });
      walk(path, groupChildren);
    }
  };
  walk([], schema[0].num_children ?? 0);
  if (index !== schema.length) throw new Error("schema has elements outside the root");
  return out;
}

/**
 * Logical type of a node in one spelling for all writers: the `LogicalType` union when the
 * writer set it (pyarrow, parquet-rs), else the legacy `ConvertedType` translated to it
 * (DuckDB, old writers): `UTF8` → `STRING`, `UINT_32` → `INTEGER(32,unsigned)`, …
 */
function logicalName(element: SchemaElement): string | null {
  const logical = element.logical_type;
  if (logical !== undefined) {
    switch (logical.type) {
      case "INTEGER":
        return `INTEGER(${logical.bitWidth},${logical.isSigned ? "signed" : "unsigned"})`;
      case "DECIMAL":
        return `DECIMAL(${logical.precision},${logical.scale})`;
      case "TIME":
      case "TIMESTAMP":
        return `${logical.type}(${logical.unit},${logical.isAdjustedToUTC ? "utc" : "local"})`;
      default:
        return logical.type;
    }
  }
  const converted = element.converted_type;
  if (converted === undefined) return null;
  const integer = /^(U?)INT_(8|16|32|64)$/.exec(converted);
  if (integer) return `INTEGER(${integer[2]},${integer[1] ? "unsigned" : "signed"})`;
  const time = /^(TIME|TIMESTAMP)_(MILLIS|MICROS)$/.exec(converted);
  if (time) return `${time[1]}(${time[2]},utc)`;
  switch (converted) {
    case "UTF8":
      return "STRING";
    case "DECIMAL":
      return `DECIMAL(${element.precision},${element.scale ?? 0})`;
    case "MAP_KEY_VALUE":
      return null; // legacy marker of a map's repeated group; LogicalType has no equivalent
    default:
      return converted;
  }
}

/**
 * Canonical text of a schema: one line per node, `path<TAB>physical<TAB>logical<TAB>repetition`,
 * with `.`-joined paths and `-` for a missing value. The root's name is left out, since writers
 * differ on it (`schema` for pyarrow, `arrow_schema` for parquet-rs).
 */
export function canonicalSchema(columns: readonly ParquetColumnInfo[]): string {
  return columns
    .map((c) =>
      [c.path.join("."), c.physicalType ?? "-", c.logicalType ?? "-", c.repetition].join("\t")
    )
    .join("\n");
}

/**
 * SHA-256 hex digest of {@linkcode canonicalSchema} (hashed on this thread: a few hundred
 * bytes do not pay for a hop to another one).
 */
export function schemaFingerprint(columns: readonly ParquetColumnInfo[]): Promise<string> {
  return Promise.resolve(createHash("sha256").update(canonicalSchema(columns)).digest("hex"));
}

function u32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at, true);
}
