/**
 * Independent parquet readers for tests: hyparquet (pure JavaScript) and DuckDB (native, through
 * `@duckdb/node-api`). Neither shares code with the writer (parquet-wasm), so agreement between
 * them is evidence that a file is real parquet.
 *
 * DuckDB needs `--allow-ffi` (Node-API addon), `--allow-read` and `--allow-env`; `-A` covers it.
 *
 * DuckDB is imported by its full npm specifier, not through `import_map.json` (which the phases
 * use), so it stays out of the production `deno.lock`: a phase or `deno task setup` never
 * downloads DuckDB's native bindings (tens of MB per platform).
 * @module
 */

import { DuckDBInstance } from "npm:@duckdb/node-api@1.5.5-r.5";
import {
  type Compressors,
  type FileMetaData,
  parquetMetadata,
  parquetReadObjects,
  parquetSchema,
} from "hyparquet";
import { zstdDecompressSync } from "node:zlib";

/** hyparquet decodes snappy itself; zstd comes from `node:zlib` (Deno ≥ 2.x ships it). */
export const HYPARQUET_COMPRESSORS: Compressors = {
  ZSTD: (input: Uint8Array) => new Uint8Array(zstdDecompressSync(input)),
};

/** One row as hyparquet decodes it (strings, booleans, bigints, arrays, `Uint8Array`s). */
export type HyparquetRow = Record<string, unknown>;

async function readArrayBuffer(path: string): Promise<ArrayBuffer> {
  const bytes = await Deno.readFile(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** Reads every row of a (small) parquet file with hyparquet, loading the whole file. */
export async function readRowsWithHyparquet(
  path: string,
  columns?: string[],
): Promise<HyparquetRow[]> {
  const file = await readArrayBuffer(path);
  return await parquetReadObjects({
    file,
    columns,
    compressors: HYPARQUET_COMPRESSORS,
    // Only STRING-annotated columns become strings; plain BYTE_ARRAY stays Uint8Array.
    utf8: false,
  }) as HyparquetRow[];
}

/** The footer of a parquet file decoded by hyparquet (loads the whole file). */
export async function readMetadataWithHyparquet(path: string): Promise<FileMetaData> {
  return parquetMetadata(await readArrayBuffer(path));
}

/** Top-level column names and their parquet type, as hyparquet sees them. */
export async function columnsWithHyparquet(path: string): Promise<Array<[string, string]>> {
  const tree = parquetSchema(await readMetadataWithHyparquet(path));
  return tree.children.map((child) => [
    child.element.name,
    child.element.type ??
      child.element.logical_type?.type ??
      child.element.converted_type ??
      "GROUP",
  ]);
}

/** Quotes a string as a SQL literal. */
export function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * Runs `fn` with a connection to a fresh in-memory DuckDB, closed afterwards even on error.
 */
export async function withDuckdb<T>(
  fn: (query: (sql: string) => Promise<Record<string, unknown>[]>) => Promise<T>,
): Promise<T> {
  const instance = await DuckDBInstance.create(":memory:");
  const connection = await instance.connect();
  try {
    return await fn(async (sql) => {
      const reader = await connection.runAndReadAll(sql);
      return reader.getRowObjectsJS() as Record<string, unknown>[];
    });
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** Options of {@linkcode countRowsWithDuckdb}. */
export interface DuckdbReadOptions {
  /** Read `key=value` folders as columns (`hive_partitioning`). */
  hive?: boolean;
}

function readParquetCall(globOrPath: string, options: DuckdbReadOptions): string {
  return `read_parquet(${sqlString(globOrPath)}, hive_partitioning = ${options.hive === true})`;
}

/** Counts rows over a parquet path or glob with DuckDB. */
export async function countRowsWithDuckdb(
  globOrPath: string,
  options: DuckdbReadOptions = {},
): Promise<number> {
  return await withDuckdb(async (query) => {
    const rows = await query(`SELECT count(*) AS n FROM ${readParquetCall(globOrPath, options)}`);
    return Number(rows[0].n);
  });
}

/** Column names and DuckDB types of a parquet path or glob (`DESCRIBE`). */
export async function describeWithDuckdb(
  globOrPath: string,
  options: DuckdbReadOptions = {},
): Promise<Array<[string, string]>> {
  return await withDuckdb(async (query) => {
    const rows = await query(`DESCRIBE SELECT * FROM ${readParquetCall(globOrPath, options)}`);
    return rows.map((r) => [String(r.column_name), String(r.column_type)]);
  });
}

/** Runs one SQL query on a fresh in-memory DuckDB and returns its rows as JS values. */
export async function queryDuckdb(sql: string): Promise<Record<string, unknown>[]> {
  return await withDuckdb((query) => query(sql));
}
