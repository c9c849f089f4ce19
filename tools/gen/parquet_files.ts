/**
 * The parquet files of a downloader tree: their schemas (as pandas/pyarrow writes them),
 * generated rows, and a streaming writer through parquet-wasm.
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
import { InputError } from "../../core/errors.ts";
import type { Prng } from "./prng.ts";

/** Compression codecs the generator can write. */
export type GeneratorCompression = "zstd" | "snappy" | "none";

/** An option of the tree generator is invalid, or its root is not empty. */
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

/** Record batches of `rows` rows of a `successes.parquet` from `host`, `batchRows` at a time. */
export function* successBatches(
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

/** Record batches of `rows` rows of an `errors.parquet` from `host`, `batchRows` at a time. */
export function* errorBatches(
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

/** What the parquet writer's properties depend on. */
export interface WriterSettings {
  /** Compression codec of every column. */
  compression: GeneratorCompression;
  /** Target size of one row group of `successes.parquet`. */
  rowGroupBytes: number;
  /** Bytes of one image. */
  imageBytes: number;
}

function baseProperties(o: WriterSettings, schema: Schema): WriterPropertiesBuilder {
  const codec =
    { zstd: Compression.ZSTD, snappy: Compression.SNAPPY, none: Compression.UNCOMPRESSED }[
      o.compression
    ];
  return new WriterPropertiesBuilder()
    .setCompression(codec)
    .setCreatedBy("parquet-wasm (downloader tree generator)")
    .setKeyValueMetadata(new Map([["pandas", pandasMetadata(schema)]]));
}

/** Writer properties of a `successes.parquet`: row groups of about `rowGroupBytes`. */
export function successProperties(o: WriterSettings): WriterProperties {
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

/** Writer properties of an `errors.parquet`. */
export function errorProperties(o: WriterSettings): WriterProperties {
  return baseProperties(o, ERRORS_SCHEMA).build();
}

/**
 * Streams Arrow batches through parquet-wasm's writer into `path`; returns the file size.
 * Batches are pulled one at a time, so only one is alive in JavaScript and WebAssembly.
 */
export async function writeParquetFile(
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
