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

import {
  Binary,
  Bool,
  Data,
  Field,
  Int64,
  List,
  makeData,
  RecordBatch as ArrowRecordBatch,
  Schema,
  Struct,
  Table as ArrowTable,
  tableToIPC,
  Uint32,
  Utf8,
  vectorFromArray,
} from "apache-arrow";
import {
  Compression,
  EnabledStatistics,
  type RecordBatch as WasmRecordBatch,
  Table as WasmTable,
  transformParquetStream,
  type WriterProperties,
  WriterPropertiesBuilder,
} from "parquet-wasm";
import { createHash } from "node:crypto";
import { InputError } from "../core/errors.ts";
import { type FileKind, SOURCE_FILE } from "../core/layout.ts";

/** A range of counts; values are drawn log-uniformly in `[min, max]` (both inclusive). */
export interface CountRange {
  /** Smallest count (≥ 0). */
  min: number;
  /** Largest count (≥ `min`). */
  max: number;
}

/** Compression codecs the generator can write. */
export type GeneratorCompression = "zstd" | "snappy" | "none";

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

/** An option of {@linkcode generateTree} is invalid, or `root` is not empty. */
export class GenerateTreeError extends InputError {}

/** Arrow schema of `successes.parquet`, as pandas/pyarrow writes it. */
export const SUCCESSES_SCHEMA: Schema = new Schema([
  new Field("uuid", new Utf8(), true),
  new Field("source_id", new Utf8(), true),
  new Field("identifier", new Utf8(), true),
  new Field("is_license_full", new Bool(), true),
  new Field("license", new Utf8(), true),
  new Field("source", new Utf8(), true),
  new Field("title", new Utf8(), true),
  new Field("hashsum_original", new Utf8(), true),
  new Field("hashsum_resized", new Utf8(), true),
  new Field("original_size", new List(new Field("element", new Uint32(), true)), true),
  new Field("resized_size", new List(new Field("element", new Uint32(), true)), true),
  new Field("image", new Binary(), true),
]);

/** Arrow schema of `errors.parquet`, as pandas/pyarrow writes it. */
export const ERRORS_SCHEMA: Schema = new Schema([
  new Field("uuid", new Utf8(), true),
  new Field("identifier", new Utf8(), true),
  new Field("retry_count", new Int64(), true),
  new Field("error_code", new Int64(), true),
  new Field("error_msg", new Utf8(), true),
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

const LICENSES = ["cc-by-4.0", "cc-by-sa-4.0", "cc0-1.0", "cc-by-nc-4.0", "public-domain"];
const SOURCES = ["flickr", "wikimedia", "inaturalist", "museum-archive"];
const WORDS = [
  "red",
  "fox",
  "river",
  "old",
  "bridge",
  "museum",
  "portrait",
  "sunset",
  "bird",
  "map",
  "city",
  "forest",
  "mountain",
  "street",
  "boat",
  "flower",
];
const ERRORS: ReadonlyArray<readonly [number, string]> = [
  [404, "HTTP Error 404: Not Found"],
  [403, "HTTP Error 403: Forbidden"],
  [500, "HTTP Error 500: Internal Server Error"],
  [503, "HTTP Error 503: Service Unavailable"],
  [408, "timed out"],
  [-1, "cannot identify image file"],
];

function* successBatches(
  rng: Prng,
  host: string,
  rows: number,
  batchRows: number,
  imageBytes: number,
): Generator<ArrowRecordBatch> {
  // A file with no rows still gets one empty batch: the writer takes the schema from it.
  let start = 0;
  do {
    const n = Math.min(batchRows, rows - start);
    yield successBatch(rng, host, n, imageBytes);
    start += n;
  } while (start < rows);
}

function successBatch(rng: Prng, host: string, n: number, imageBytes: number): ArrowRecordBatch {
  const uuid: string[] = [];
  const sourceId: string[] = [];
  const identifier: string[] = [];
  const isFull: boolean[] = [];
  const license: string[] = [];
  const source: string[] = [];
  const title: (string | null)[] = [];
  const hashOrig: string[] = [];
  const hashResized: string[] = [];
  const origSize = new Uint32Array(2 * n);
  const resizedSize = new Uint32Array(2 * n);
  const imageOffsets = new Int32Array(n + 1);

  const minImage = Math.max(1, Math.ceil(imageBytes / 2));
  const maxImage = Math.max(minImage, Math.floor((imageBytes * 3) / 2));
  for (let i = 0; i < n; i++) {
    const id = rng.uuid();
    uuid.push(id);
    sourceId.push(`${SOURCES[rng.int(0, SOURCES.length - 1)]}:${rng.hex(12)}`);
    identifier.push(`https://${host}/images/${id.slice(0, 2)}/${id}.jpg`);
    isFull.push(rng.float() < 0.8);
    license.push(LICENSES[rng.int(0, LICENSES.length - 1)]);
    source.push(SOURCES[rng.int(0, SOURCES.length - 1)]);
    title.push(rng.float() < 0.05 ? null : rng.words(WORDS, rng.int(1, 6)));
    hashOrig.push(rng.hex(32));
    const h = rng.int(64, 6000);
    const w = rng.int(64, 6000);
    origSize[2 * i] = h;
    origSize[2 * i + 1] = w;
    const scale = Math.min(1, 512 / Math.max(h, w));
    resizedSize[2 * i] = Math.max(1, Math.round(h * scale));
    resizedSize[2 * i + 1] = Math.max(1, Math.round(w * scale));
    const size = rng.int(minImage, maxImage);
    if (imageOffsets[i] + size > 0x7fffffff) {
      throw new GenerateTreeError(
        `generateTree: one batch would exceed 2 GiB of image bytes; lower batchBytes`,
      );
    }
    imageOffsets[i + 1] = imageOffsets[i] + size;
  }
  const images = rng.bytes(imageOffsets[n]);
  for (let i = 0; i < n; i++) {
    const blob = images.subarray(imageOffsets[i], imageOffsets[i + 1]);
    hashResized.push(createHash("md5").update(blob).digest("hex"));
  }

  return makeBatch(SUCCESSES_SCHEMA, n, [
    vectorFromArray(uuid, new Utf8()).data[0],
    vectorFromArray(sourceId, new Utf8()).data[0],
    vectorFromArray(identifier, new Utf8()).data[0],
    vectorFromArray(isFull, new Bool()).data[0],
    vectorFromArray(license, new Utf8()).data[0],
    vectorFromArray(source, new Utf8()).data[0],
    vectorFromArray(title, new Utf8()).data[0],
    vectorFromArray(hashOrig, new Utf8()).data[0],
    vectorFromArray(hashResized, new Utf8()).data[0],
    pairList(SUCCESSES_SCHEMA.fields[9].type as List<Uint32>, origSize, n),
    pairList(SUCCESSES_SCHEMA.fields[10].type as List<Uint32>, resizedSize, n),
    makeData({ type: new Binary(), length: n, valueOffsets: imageOffsets, data: images }),
  ]);
}

function pairList(type: List<Uint32>, values: Uint32Array, n: number): Data {
  const offsets = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) offsets[i] = 2 * i;
  const child = makeData({ type: new Uint32(), length: 2 * n, data: values });
  return makeData({ type, length: n, valueOffsets: offsets, child });
}

function* errorBatches(
  rng: Prng,
  host: string,
  rows: number,
  batchRows: number,
): Generator<ArrowRecordBatch> {
  let start = 0;
  do {
    const n = Math.min(batchRows, rows - start);
    start += n;
    const uuid: string[] = [];
    const identifier: string[] = [];
    const retry = new BigInt64Array(n);
    const code = new BigInt64Array(n);
    const msg: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = rng.uuid();
      uuid.push(id);
      identifier.push(`https://${host}/images/${id.slice(0, 2)}/${id}.jpg`);
      retry[i] = BigInt(rng.int(0, 3));
      const [c, m] = ERRORS[rng.int(0, ERRORS.length - 1)];
      code[i] = BigInt(c);
      msg.push(m);
    }
    yield makeBatch(ERRORS_SCHEMA, n, [
      vectorFromArray(uuid, new Utf8()).data[0],
      vectorFromArray(identifier, new Utf8()).data[0],
      makeData({ type: new Int64(), length: n, data: retry }),
      makeData({ type: new Int64(), length: n, data: code }),
      vectorFromArray(msg, new Utf8()).data[0],
    ]);
  } while (start < rows);
}

function makeBatch(schema: Schema, length: number, children: Data[]): ArrowRecordBatch {
  return new ArrowRecordBatch(
    schema,
    makeData({ type: new Struct(schema.fields), length, nullCount: 0, children }),
  );
}

// ---------------------------------------------------------------------------------------------
// Parquet writing

function pandasMetadata(schema: Schema): string {
  const pandasType = (f: Field): string => {
    if (f.type instanceof Utf8) return "unicode";
    if (f.type instanceof Bool) return "bool";
    if (f.type instanceof Int64) return "int64";
    if (f.type instanceof Binary) return "bytes";
    return "object";
  };
  return JSON.stringify({
    index_columns: [{ kind: "range", name: null, start: 0, stop: 0, step: 1 }],
    column_indexes: [],
    columns: schema.fields.map((f) => ({
      name: f.name,
      field_name: f.name,
      pandas_type: pandasType(f),
      numpy_type: f.type instanceof Bool || f.type instanceof Int64 ? pandasType(f) : "object",
      metadata: null,
    })),
    creator: { library: "pyarrow", version: "generated" },
    pandas_version: "generated",
  });
}

function baseProperties(o: ResolvedOptions, schema: Schema): WriterPropertiesBuilder {
  const codec =
    { zstd: Compression.ZSTD, snappy: Compression.SNAPPY, none: Compression.UNCOMPRESSED }[
      o.compression
    ];
  return new WriterPropertiesBuilder()
    .setCompression(codec)
    .setCreatedBy("parquet-wasm (downloader tree generator)")
    .setKeyValueMetadata(new Map([["pandas", pandasMetadata(schema)]]));
}

function successProperties(o: ResolvedOptions): WriterProperties {
  const perRowGroup = Math.max(1, Math.floor(o.rowGroupBytes / o.imageBytes));
  // Pages are cut after each write batch: keep a write batch near 1 MiB of image data.
  const writeBatch = Math.min(1024, Math.max(1, Math.floor(MiB / o.imageBytes)));
  return baseProperties(o, SUCCESSES_SCHEMA)
    .setMaxRowGroupSize(perRowGroup)
    .setWriteBatchSize(writeBatch)
    .setColumnDictionaryEnabled("image", false)
    .setColumnStatisticsEnabled("image", EnabledStatistics.None)
    .build();
}

function errorProperties(o: ResolvedOptions): WriterProperties {
  return baseProperties(o, ERRORS_SCHEMA).build();
}

/**
 * Streams Arrow batches through parquet-wasm's writer into `path`; returns the file size.
 * Batches are pulled one at a time, so only one is alive in JavaScript and WebAssembly.
 */
async function writeParquetFile(
  path: string,
  batches: Iterator<ArrowRecordBatch>,
  properties: WriterProperties,
): Promise<number> {
  // An error thrown by `pull` reaches us from the WebAssembly side as an opaque message;
  // keep the original to rethrow it.
  let failure: unknown = undefined;
  const source = new ReadableStream<WasmRecordBatch>({
    pull(controller) {
      try {
        const next = batches.next();
        if (next.done) {
          controller.close();
          return;
        }
        const ipc = tableToIPC(new ArrowTable([next.value]), "stream");
        const table = WasmTable.fromIPCStream(ipc);
        const batch = table.recordBatch(0);
        table.free();
        if (batch === undefined) throw new Error("parquet-wasm decoded no record batch");
        controller.enqueue(batch);
      } catch (e) {
        failure = e;
        throw e;
      }
    },
  }, { highWaterMark: 0 });
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const bytes = await transformParquetStream(source, properties);
    await (bytes as ReadableStream<Uint8Array>).pipeTo(file.writable);
  } catch (e) {
    try {
      file.close();
    } catch { /* already closed by the aborted pipe */ }
    await Deno.remove(path).catch(() => {});
    throw failure ?? e;
  }
  return (await Deno.stat(path)).size;
}

// ---------------------------------------------------------------------------------------------
// Deterministic PRNG

/** xoshiro128** seeded from a string key through cyrb128; fast and reproducible. */
class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  private constructor(a: number, b: number, c: number, d: number) {
    this.#a = a | 0;
    this.#b = b | 0;
    this.#c = c | 0;
    this.#d = d | 0;
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  static fromKey(key: string): Prng {
    let h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
    for (let i = 0; i < key.length; i++) {
      const k = key.charCodeAt(i);
      h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
      h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
      h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
      h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
    }
    h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
    h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
    h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
    h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
    return new Prng(h1 ^ h2 ^ h3 ^ h4, h2 ^ h1, h3 ^ h1, h4 ^ h1);
  }

  /** Next 32-bit unsigned integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9);
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result >>> 0;
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  hex(chars: number): string {
    let s = "";
    while (s.length < chars) s += this.u32().toString(16).padStart(8, "0");
    return s.slice(0, chars);
  }

  uuid(): string {
    const h = this.hex(32).split("");
    h[12] = "4";
    h[16] = "89ab"[parseInt(h[16], 16) & 3];
    const s = h.join("");
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${
      s.slice(20)
    }`;
  }

  words(list: readonly string[], count: number): string {
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(list[this.int(0, list.length - 1)]);
    return out.join(" ");
  }

  /** `n` random bytes (a fresh buffer). */
  bytes(n: number): Uint8Array {
    const words = new Uint32Array(Math.ceil(n / 4));
    let a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    for (let i = 0; i < words.length; i++) {
      words[i] = Math.imul(rotl(Math.imul(b, 5), 7), 9);
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = rotl(d, 11);
    }
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#d = d;
    // Byte order of the words follows the platform; all supported platforms are little-endian.
    return new Uint8Array(words.buffer, 0, n);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
