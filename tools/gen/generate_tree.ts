/**
 * Generator of realistic image-downloader output trees with real parquet files.
 *
 * The tree has the layout the downloader leaves behind:
 *
 * ```
 * <root>/server_name=<S>/partition_id=<P>/successes.parquet
 *                                         errors.parquet
 *                                         completed      (empty; completed partitions only)
 * ```
 *
 * Files are written with parquet-wasm (Rust `parquet` crate compiled to WebAssembly) through
 * its streaming writer `transformParquetStream`: record batches are produced on demand, so the
 * memory used does not depend on the file size but on `rowGroupBytes` (the writer buffers one
 * row group) and `batchBytes` (one Arrow batch in JavaScript and one copy in WebAssembly).
 * Measured peak RSS with 100 kB images: 310 MiB with 16 MiB row groups, 590 MiB with 64 MiB
 * (WebAssembly memory grows by doubling and never shrinks). One batch of image bytes must stay
 * below 2 GiB (32-bit Arrow offsets).
 *
 * Everything random comes from a seeded PRNG derived from `(seed, server, partition, file)`:
 * the same options give a byte-identical tree.
 *
 * Differences from the real pandas/pyarrow files: the writer is parquet-rs (`created_by` says
 * so), the root schema element is named `arrow_schema` instead of `schema`, zstd runs at the
 * parquet-rs default level (1) because parquet-wasm 0.8 cannot set a level (the image blobs are
 * incompressible anyway), and the `pandas` key-value metadata is a reduced version.
 * @module
 */

import { type FileKind, SOURCE_FILE } from "../../core/layout.ts";
import {
  errorBatches,
  errorProperties,
  GenerateTreeError,
  type GeneratorCompression,
  successBatches,
  successProperties,
  writeParquetFile,
} from "./parquet_files.ts";
import { Prng } from "./prng.ts";

export type { GeneratorCompression } from "./parquet_files.ts";
export { ERRORS_SCHEMA, GenerateTreeError, SUCCESSES_SCHEMA } from "./parquet_files.ts";

/** A range of counts; values are drawn log-uniformly in `[min, max]` (both inclusive). */
export interface CountRange {
  /** Smallest count (≥ 0). */
  min: number;
  /** Largest count (≥ `min`). */
  max: number;
}

/** Options of {@linkcode generateTree}. Only `root` is required. */
export interface GenerateTreeOptions {
  /** Directory to create the tree in. It must not exist or be empty. */
  root: string;
  /**
   * Server names, or how many to make (default 3). Counts use {@linkcode DEFAULT_SERVER_NAMES}
   * first, then `host<i>.example.com`.
   */
  servers?: readonly string[] | number;
  /** Partitions per server (default 4). Partition ids are `0 … n-1`. */
  partitionsPerServer?: number;
  /** Rows of each `successes.parquet`: a fixed count or a range (default 20). */
  rowsPerPartition?: number | CountRange;
  /** Mean size in bytes of the random image blob (default 2048); sizes vary ±50 %. */
  imageBytes?: number;
  /** Rows of each `errors.parquet`: a fixed count or a range (default 5). */
  errorRows?: number | CountRange;
  /**
   * Fraction of partitions without the `completed` marker (default 0.25). Exactly
   * `round(fraction × partitions)` partitions are left incomplete, chosen by the PRNG; they
   * still hold both parquet files.
   */
  incompleteFraction?: number;
  /** PRNG seed, a non-negative safe integer (default 1). */
  seed?: number;
  /** Codec of every column (default `zstd`). */
  compression?: GeneratorCompression;
  /**
   * Target size of one row group of `successes.parquet` (default 32 MiB). The writer holds a
   * row group in WebAssembly memory: peak RSS grows by about 6 × this value.
   */
  rowGroupBytes?: number;
  /** Target size of one Arrow record batch fed to the writer (default 8 MiB). */
  batchBytes?: number;
  /** Called after each file is written, for progress reports. */
  onFile?: (file: GeneratedFile) => void;
}

/** One parquet file the generator wrote. */
export interface GeneratedFile {
  /** Path of the file (under `root`). */
  path: string;
  /** Which of the two tables it holds. */
  kind: FileKind;
  /** Number of rows. */
  rows: number;
  /** Size on disk in bytes. */
  bytes: number;
}

/** One partition directory the generator wrote. */
export interface GeneratedPartition {
  /** Server name as it appears in the directory name. */
  server: string;
  /** Partition id. */
  partitionId: number;
  /** Path of the `partition_id=<P>` directory. */
  dir: string;
  /** Whether the `completed` marker was written. */
  completed: boolean;
  /** The parquet files, successes first. */
  files: GeneratedFile[];
}

/** What {@linkcode generateTree} wrote. */
export interface TreeSummary {
  /** The tree's root directory. */
  root: string;
  /** Server names in the order written. */
  servers: string[];
  /** Every partition, by server then partition id. */
  partitions: GeneratedPartition[];
  /** Number of partitions with the `completed` marker. */
  completedPartitions: number;
  /** Number of parquet files. */
  files: number;
  /** Total bytes of the parquet files. */
  bytes: number;
  /** Total rows over all `successes.parquet`. */
  successRows: number;
  /** Total rows over all `errors.parquet`. */
  errorRows: number;
}

/**
 * Default server names: one with a percent-encoded port, one with a raw `:` and a plain one,
 * as the downloader writes them.
 */
export const DEFAULT_SERVER_NAMES: readonly string[] = Object.freeze([
  "images.example.org%3A8080",
  "media.example.net:443",
  "cdn.example.com",
]);

const MiB = 1024 * 1024;

interface ResolvedOptions {
  root: string;
  servers: string[];
  partitionsPerServer: number;
  rows: CountRange;
  imageBytes: number;
  errorRows: CountRange;
  incompleteFraction: number;
  seed: number;
  compression: GeneratorCompression;
  rowGroupBytes: number;
  batchBytes: number;
}

/**
 * Writes a downloader tree under `options.root` and returns what it wrote.
 *
 * @throws {GenerateTreeError} an option is out of range or `root` is a non-empty directory.
 */
export async function generateTree(options: GenerateTreeOptions): Promise<TreeSummary> {
  const o = resolveOptions(options);
  await ensureEmptyDir(o.root);

  const total = o.servers.length * o.partitionsPerServer;
  const incomplete = pickIncomplete(total, o.incompleteFraction, o.seed);
  const summary: TreeSummary = {
    root: o.root,
    servers: [...o.servers],
    partitions: [],
    completedPartitions: 0,
    files: 0,
    bytes: 0,
    successRows: 0,
    errorRows: 0,
  };

  for (let s = 0; s < o.servers.length; s++) {
    const server = o.servers[s];
    for (let p = 0; p < o.partitionsPerServer; p++) {
      const dir = `${o.root}/server_name=${server}/partition_id=${p}`;
      await Deno.mkdir(dir, { recursive: true });
      const rng = Prng.fromKey(`${o.seed}/${s}/${p}/counts`);
      const successRows = drawCount(rng, o.rows);
      const errorRows = drawCount(rng, o.errorRows);
      const host = decodeURIComponent(server).replace(/:\d+$/, "");
      const partition: GeneratedPartition = {
        server,
        partitionId: p,
        dir,
        completed: !incomplete.has(s * o.partitionsPerServer + p),
        files: [],
      };

      partition.files.push(
        ...await writePartitionFiles(o, dir, host, `${o.seed}/${s}/${p}`, successRows, errorRows),
      );
      for (const f of partition.files) options.onFile?.(f);
      const [successBytes, errorBytes] = partition.files.map((f) => f.bytes);

      if (partition.completed) {
        await Deno.writeFile(`${dir}/completed`, new Uint8Array(0));
        summary.completedPartitions++;
      }
      summary.partitions.push(partition);
      summary.files += 2;
      summary.bytes += successBytes + errorBytes;
      summary.successRows += successRows;
      summary.errorRows += errorRows;
    }
  }
  return summary;
}

/** Options of {@linkcode writePartition}. */
export interface WritePartitionOptions {
  /** Server name as the downloader writes it (its host goes into the rows). */
  server: string;
  /** Key of the deterministic random streams: the same key gives the same bytes. */
  key: string;
  /** Rows of `successes.parquet`. */
  successRows: number;
  /** Rows of `errors.parquet`. */
  errorRows: number;
  /** Mean size of an image blob in bytes (default as in {@linkcode generateTree}). */
  imageBytes?: number;
  /** Compression (default zstd). */
  compression?: GeneratorCompression;
}

/**
 * Writes the `successes.parquet` and `errors.parquet` of one partition into `dir` (created
 * if needed), without the `completed` marker. Used by tests that build trees by hand.
 */
export async function writePartition(
  dir: string,
  options: WritePartitionOptions,
): Promise<GeneratedFile[]> {
  const o = resolveOptions({
    root: dir,
    imageBytes: options.imageBytes,
    compression: options.compression,
  });
  await Deno.mkdir(dir, { recursive: true });
  const host = decodeURIComponent(options.server).replace(/:\d+$/, "");
  return await writePartitionFiles(
    o,
    dir,
    host,
    options.key,
    options.successRows,
    options.errorRows,
  );
}

async function writePartitionFiles(
  o: ResolvedOptions,
  dir: string,
  host: string,
  key: string,
  successRows: number,
  errorRows: number,
): Promise<GeneratedFile[]> {
  const successPath = `${dir}/${SOURCE_FILE.successes}`;
  const successBatchRows = Math.max(1, Math.floor(o.batchBytes / o.imageBytes));
  const successBytes = await writeParquetFile(
    successPath,
    successBatches(
      Prng.fromKey(`${key}/successes`),
      host,
      successRows,
      successBatchRows,
      o.imageBytes,
    ),
    successProperties(o),
  );
  const errorPath = `${dir}/${SOURCE_FILE.errors}`;
  const errorBytes = await writeParquetFile(
    errorPath,
    errorBatches(Prng.fromKey(`${key}/errors`), host, errorRows, 65536),
    errorProperties(o),
  );
  return [
    { path: successPath, kind: "successes", rows: successRows, bytes: successBytes },
    { path: errorPath, kind: "errors", rows: errorRows, bytes: errorBytes },
  ];
}

function resolveOptions(options: GenerateTreeOptions): ResolvedOptions {
  const fail = (what: string): never => {
    throw new GenerateTreeError(`generateTree: ${what}`);
  };
  if (typeof options.root !== "string" || options.root === "") fail("`root` must be a path");
  const root = options.root.replace(/\/+$/, "") || "/";
  const servers = resolveServers(options.servers ?? DEFAULT_SERVER_NAMES.length, fail);
  const partitionsPerServer = options.partitionsPerServer ?? 4;
  checkInt(partitionsPerServer, 1, "partitionsPerServer", fail);
  const rows = resolveRange(options.rowsPerPartition ?? 20, "rowsPerPartition", fail);
  const errorRows = resolveRange(options.errorRows ?? 5, "errorRows", fail);
  const imageBytes = options.imageBytes ?? 2048;
  checkInt(imageBytes, 1, "imageBytes", fail);
  if (imageBytes > 1024 * MiB) fail(`imageBytes ${imageBytes} is above the 1 GiB limit`);
  const incompleteFraction = options.incompleteFraction ?? 0.25;
  if (!(incompleteFraction >= 0 && incompleteFraction <= 1)) {
    fail(`incompleteFraction must be in [0, 1], got ${incompleteFraction}`);
  }
  const seed = options.seed ?? 1;
  checkInt(seed, 0, "seed", fail);
  const compression = options.compression ?? "zstd";
  if (!["zstd", "snappy", "none"].includes(compression)) {
    fail(`compression must be zstd, snappy or none, got ${compression}`);
  }
  const rowGroupBytes = options.rowGroupBytes ?? 32 * MiB;
  checkInt(rowGroupBytes, 1, "rowGroupBytes", fail);
  const batchBytes = options.batchBytes ?? 8 * MiB;
  checkInt(batchBytes, 1, "batchBytes", fail);
  return {
    root,
    servers,
    partitionsPerServer,
    rows,
    imageBytes,
    errorRows,
    incompleteFraction,
    seed,
    compression,
    rowGroupBytes,
    batchBytes,
  };
}

function checkInt(value: number, min: number, name: string, fail: (w: string) => never): void {
  if (!Number.isSafeInteger(value) || value < min) {
    fail(`${name} must be an integer ≥ ${min}, got ${value}`);
  }
}

function resolveServers(
  servers: readonly string[] | number,
  fail: (w: string) => never,
): string[] {
  if (typeof servers === "number") {
    checkInt(servers, 1, "servers", fail);
    const names: string[] = [];
    for (let i = 0; i < servers; i++) {
      names.push(
        i < DEFAULT_SERVER_NAMES.length ? DEFAULT_SERVER_NAMES[i] : `host${i}.example.com`,
      );
    }
    return names;
  }
  if (servers.length === 0) fail("`servers` is empty");
  const seen = new Set<string>();
  for (const name of servers) {
    if (name === "" || name.includes("/") || name === "." || name === "..") {
      fail(`server name ${JSON.stringify(name)} cannot be a directory name`);
    }
    if (seen.has(name)) fail(`server name ${JSON.stringify(name)} is given twice`);
    seen.add(name);
  }
  return [...servers];
}

function resolveRange(
  value: number | CountRange,
  name: string,
  fail: (w: string) => never,
): CountRange {
  const range = typeof value === "number" ? { min: value, max: value } : value;
  checkInt(range.min, 0, `${name}.min`, fail);
  checkInt(range.max, range.min, `${name}.max`, fail);
  return { min: range.min, max: range.max };
}

async function ensureEmptyDir(root: string): Promise<void> {
  try {
    const info = await Deno.stat(root);
    if (!info.isDirectory) {
      throw new GenerateTreeError(`generateTree: ${root} exists and is not a directory`);
    }
    for await (const _ of Deno.readDir(root)) {
      throw new GenerateTreeError(
        `generateTree: ${root} is not empty; pick a new directory or remove it first`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    await Deno.mkdir(root, { recursive: true });
  }
}

/** Chooses exactly `round(fraction × total)` partition indexes, deterministically. */
function pickIncomplete(total: number, fraction: number, seed: number): Set<number> {
  const order = Array.from({ length: total }, (_, i) => i);
  const rng = Prng.fromKey(`${seed}/incomplete`);
  for (let i = total - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return new Set(order.slice(0, Math.round(fraction * total)));
}

/** Draws a count log-uniformly in the range, so sizes spread over orders of magnitude. */
function drawCount(rng: Prng, range: CountRange): number {
  if (range.min === range.max) return range.min;
  const lo = Math.log(range.min + 1);
  const hi = Math.log(range.max + 1);
  const value = Math.floor(Math.exp(lo + rng.float() * (hi - lo))) - 1;
  return Math.min(range.max, Math.max(range.min, value));
}

// ---------------------------------------------------------------------------------------------
// Row content
