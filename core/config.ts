/**
 * The YAML configuration shared with the downloader toolbox. This tool reads the toolbox's
 * keys it needs, plus an optional `data_transfer:` section of its own; every other key is
 * accepted and ignored.
 * @module
 */

import { dirname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "./errors.ts";
import { isWithin } from "./is_within.ts";
import type { Md5EngineChoice } from "./md5/open_engine.ts";

/**
 * How a copy is checked before it is published: `md5`, the copy as read back from storage has
 * the source's MD5 (every byte read back is compared with the source byte). The configuration
 * also accepts `bytes`, which now does the same (see {@linkcode Config.notes}).
 */
export type VerifyMode = "md5";

/** Settings of the `data_transfer:` section, with defaults applied. */
export interface TransferSettings {
  /** The verification (see {@linkcode VerifyMode}). */
  verifyMode: VerifyMode;
  /** Extra attempts after a failed verification before a file is recorded as failed. */
  retries: number;
  /** Size of one I/O buffer in bytes, a multiple of 4096 (one read, write or read-back). */
  bufferSize: number;
  /**
   * Buffers of a rank, shared by its files in flight: each range of a file in flight holds two
   * (the source bytes and the same range read back), so memory is `buffers * bufferSize`.
   */
  buffers: number;
  /** Files each rank copies at the same time. */
  filesInFlight: number;
  /** Stop taking new files when the Slurm job has less than this many seconds left. */
  timeMarginSeconds: number;
  /** Transfer sources that are not valid parquet instead of refusing them. */
  allowInvalidParquet: boolean;
  /** Seconds between progress lines when the output is not a terminal. */
  progressIntervalSeconds: number;
  /** Verification records appended between two fsyncs of a rank's log. */
  logSyncEvery: number;
  /** MD5 implementation: `auto`, `wasm-simd`, `libcrypto` or `node:crypto`. */
  md5Engine: Md5EngineChoice;
}

/** A loaded, validated configuration with absolute paths. */
export interface Config {
  /** Absolute path of the configuration file. */
  configPath: string;
  /** `path_to_output_folder`, absolute. */
  outputFolder: string;
  /** `<path_to_output_folder>/<output_structure.images_folder>`: the source tree. */
  imagesFolder: string;
  /** `<path_to_output_folder>/<output_structure.tools_folder>`: working area of all tools. */
  toolsFolder: string;
  /** `tools_parameters.max_nodes`. */
  maxNodes: number;
  /** `tools_parameters.workers_per_node`. */
  workersPerNode: number;
  /** `tools_parameters.num_workers`: worker jobs submitted one after another (default 1). */
  numWorkers: number;
  /** `tools_parameters.cpu_per_worker` (default 1). */
  cpuPerWorker: number;
  /** `dst_image_folder`, absolute: successes files go to `server=<S>/data_<uuid>.parquet`. */
  dstImageFolder: string;
  /** `dst_error_folder`, absolute: errors files go to `server=<S>/errors_<uuid>.parquet`. */
  dstErrorFolder: string;
  /** The `data_transfer:` section with defaults applied. */
  transfer: TransferSettings;
  /**
   * One line each about settings accepted for compatibility that now mean something else;
   * the run phase shows them.
   */
  notes: readonly string[];
}

/** Defaults of the `data_transfer:` section. */
export const DEFAULT_TRANSFER_SETTINGS: Readonly<TransferSettings> = Object.freeze({
  verifyMode: "md5",
  retries: 2,
  bufferSize: 2 * 1024 * 1024,
  buffers: 16,
  filesInFlight: 8,
  timeMarginSeconds: 300,
  allowInvalidParquet: false,
  progressIntervalSeconds: 30,
  logSyncEvery: 16,
  md5Engine: "auto",
});

/** The environment variable the toolbox sets to name the config file. */
export const CONFIG_ENV = "CONFIG_PATH";

/** World size of the worker jobs: `max_nodes * workers_per_node`. */
export function worldSize(config: Config): number {
  return config.maxNodes * config.workersPerNode;
}

/** Reads, parses and validates a config file. Throws {@linkcode ConfigError}. */
export async function loadConfig(path: string): Promise<Config> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await Deno.readTextFile(abs);
  } catch (err) {
    const reason = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.IsADirectory
      ? "is a folder, expected a YAML file"
      : (err as Error).message;
    throw new ConfigError(`${abs}: cannot read the config file: ${reason}`);
  }
  return parseConfig(text, abs);
}

/** Parses config text; `path` names the file in messages and anchors relative paths. */
export function parseConfig(text: string, path: string): Config {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const first = ((err as Error).message ?? String(err)).split("\n")[0];
    throw new ConfigError(`${path}: not valid YAML: ${first}`);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(`${path}: expected a YAML mapping of keys at the top level`);
  }
  const r = new KeyReader(path, doc as Record<string, unknown>);
  const base = dirname(path);
  const outputFolder = resolve(base, r.string("path_to_output_folder"));
  const imagesFolder = resolve(outputFolder, r.string("output_structure.images_folder"));
  const toolsFolder = resolve(outputFolder, r.string("output_structure.tools_folder"));
  const config: Config = {
    configPath: path,
    outputFolder,
    imagesFolder,
    toolsFolder,
    maxNodes: r.positiveInt("tools_parameters.max_nodes"),
    workersPerNode: r.positiveInt("tools_parameters.workers_per_node"),
    numWorkers: r.positiveInt("tools_parameters.num_workers", 1),
    cpuPerWorker: r.positiveInt("tools_parameters.cpu_per_worker", 1),
    dstImageFolder: resolve(base, r.string("dst_image_folder")),
    dstErrorFolder: resolve(base, r.string("dst_error_folder")),
    transfer: readTransferSettings(r),
    notes: r.get("data_transfer.verify_mode") === "bytes"
      ? [
        `${path}: data_transfer.verify_mode: bytes now does the same as md5: every byte of ` +
        `the copy is read back from storage and compared with the source, and the MD5 recorded`,
      ]
      : [],
  };
  checkFolders(path, config);
  return config;
}

function readTransferSettings(r: KeyReader): TransferSettings {
  const d = DEFAULT_TRANSFER_SETTINGS;
  r.mapping("data_transfer");
  r.choice("data_transfer.verify_mode", ["md5", "bytes"], d.verifyMode);
  return {
    verifyMode: "md5",
    retries: r.nonNegativeInt("data_transfer.retries", d.retries),
    bufferSize: r.byteSize("data_transfer.buffer_size", d.bufferSize, 4096, 1 << 30, 4096),
    buffers: r.positiveInt("data_transfer.buffers", d.buffers, 2, 1024),
    filesInFlight: r.positiveInt("data_transfer.files_in_flight", d.filesInFlight, 1, 64),
    timeMarginSeconds: r.nonNegativeInt("data_transfer.time_margin_seconds", d.timeMarginSeconds),
    allowInvalidParquet: r.bool("data_transfer.allow_invalid_parquet", d.allowInvalidParquet),
    progressIntervalSeconds: r.positiveInt(
      "data_transfer.progress_interval_seconds",
      d.progressIntervalSeconds,
    ),
    logSyncEvery: r.positiveInt("data_transfer.log_sync_every", d.logSyncEvery),
    md5Engine: r.choice(
      "data_transfer.md5_engine",
      ["auto", "wasm-simd", "libcrypto", "node:crypto"],
      d.md5Engine,
    ) as Md5EngineChoice,
  };
}

function checkFolders(path: string, c: Config): void {
  const pairs: Array<[string, string]> = [
    ["dst_image_folder", c.dstImageFolder],
    ["dst_error_folder", c.dstErrorFolder],
  ];
  for (const [key, dst] of pairs) {
    if (isWithin(c.imagesFolder, dst)) {
      throw new ConfigError(
        `${path}: key '${key}': ${dst} lies inside the source tree ${c.imagesFolder}; ` +
          `expected a folder outside output_structure.images_folder`,
      );
    }
    if (isWithin(dst, c.imagesFolder)) {
      throw new ConfigError(
        `${path}: key '${key}': ${dst} contains the source tree ${c.imagesFolder}; ` +
          `expected a folder that neither holds nor lies inside the source`,
      );
    }
    if (isWithin(dst, c.toolsFolder) || isWithin(c.toolsFolder, dst)) {
      throw new ConfigError(
        `${path}: key '${key}': ${dst} overlaps the tools folder ${c.toolsFolder}; ` +
          `expected a separate folder (readers glob the dataset folders)`,
      );
    }
  }
  if (isWithin(c.toolsFolder, c.imagesFolder) || isWithin(c.imagesFolder, c.toolsFolder)) {
    throw new ConfigError(
      `${path}: key 'output_structure.tools_folder': ${c.toolsFolder} overlaps the source ` +
        `tree ${c.imagesFolder}; expected separate folders`,
    );
  }
}

/** Reads dotted keys from a parsed YAML document with typed, located errors. */
class KeyReader {
  constructor(readonly path: string, readonly doc: Record<string, unknown>) {}

  get(key: string): unknown {
    let node: unknown = this.doc;
    for (const part of key.split(".")) {
      if (node === null || typeof node !== "object" || Array.isArray(node)) return undefined;
      node = (node as Record<string, unknown>)[part];
    }
    return node;
  }

  fail(key: string, expected: string, value: unknown): never {
    const got = value === undefined ? "it is missing" : `got ${JSON.stringify(value)}`;
    throw new ConfigError(`${this.path}: key '${key}': expected ${expected}, ${got}`);
  }

  mapping(key: string): void {
    const v = this.get(key);
    if (v !== undefined && v !== null && (typeof v !== "object" || Array.isArray(v))) {
      this.fail(key, "a mapping of settings", v);
    }
  }

  string(key: string): string {
    const v = this.get(key);
    if (typeof v !== "string" || v.trim() === "") this.fail(key, "a non-empty path string", v);
    return v;
  }

  positiveInt(key: string, fallback?: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.get(key);
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min} to ${max}`;
      this.fail(key, `a whole number ${range}`, v);
    }
    return v;
  }

  nonNegativeInt(key: string, fallback: number): number {
    return this.positiveInt(key, fallback, 0);
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") this.fail(key, "true or false", v);
    return v;
  }

  choice(key: string, options: readonly string[], fallback: string): string {
    const v = this.get(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string" || !options.includes(v)) {
      this.fail(key, `one of ${options.join(", ")}`, v);
    }
    return v;
  }

  byteSize(key: string, fallback: number, min: number, max: number, multiple: number): number {
    const v = this.get(key);
    if (v === undefined || v === null) return fallback;
    const n = typeof v === "number" ? v : parseByteSize(String(v));
    if (n === null || !Number.isInteger(n) || n < min || n > max || n % multiple !== 0) {
      this.fail(
        key,
        `a multiple of ${multiple} bytes from ${min} bytes to 1GiB (bytes, or e.g. 8MiB)`,
        v,
      );
    }
    return n;
  }
}

/** Parses `8MiB`, `512KiB`, `1GiB`, `4096` into bytes, or returns null. */
export function parseByteSize(text: string): number | null {
  const m = /^\s*(\d+)\s*(B|KiB|MiB|GiB|K|M|G)?\s*$/i.exec(text);
  if (!m) return null;
  const unit = (m[2] ?? "B").toUpperCase().replace("IB", "");
  const mult: Record<string, number> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };
  return Number(m[1]) * mult[unit];
}
