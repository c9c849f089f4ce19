/**
 * The YAML configuration shared with the downloader toolbox. This tool reads the toolbox's
 * keys it needs, plus an optional `data_transfer:` section of its own, where an unknown key is
 * an error (a typo would otherwise be ignored); every other key of the file is accepted and
 * ignored. Every problem of a file is reported at once, one line each.
 * @module
 */

import { dirname, resolve } from "node:path";
import { load as parseYaml } from "js-yaml";
import { ConfigError, errorMessage } from "./errors.ts";
import { isWithin } from "./is_within.ts";
import type { Md5EngineChoice } from "./md5/open_engine.ts";
import { isMapping, KeyReader } from "./config_reader.ts";
import type { YamlMapping } from "./config_reader.ts";

export { parseByteSize } from "./config_reader.ts";

/**
 * How a copy is checked before it is published: `md5`, the copy as read back from storage has
 * the source's MD5 (every byte read back is compared with the source byte). The configuration
 * also accepts `bytes`, which now does the same (see {@linkcode Config.warnings}).
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
  /**
   * Balancing at run time: a rank whose share is done takes the files other ranks have not
   * started yet (default true; false keeps each rank to its own share, as the bench compares).
   */
  steal: boolean;
}

/**
 * Keys of `tools_parameters` this tool reads. Each is checked only by the phases that use it:
 * the toolbox's example configs hold `0` ("set me") in the ones a user's tools do not need.
 */
const TOOLS_PARAMETERS = [
  "num_workers",
  "max_nodes",
  "workers_per_node",
  "cpu_per_worker",
] as const;

/** One of {@linkcode TOOLS_PARAMETERS}. */
export type ToolsParameter = typeof TOOLS_PARAMETERS[number];

/** The keys whose product is the world size of the worker jobs (used by `schedule`). */
export const WORLD_SIZE_KEYS: readonly ToolsParameter[] = ["max_nodes", "workers_per_node"];

/** The keys the Slurm chain needs (used by `submit`): the worker jobs' count and shape. */
export const SUBMIT_KEYS: readonly ToolsParameter[] = TOOLS_PARAMETERS;

/** Values of the `tools_parameters` keys that have no placeholder meaning when absent. */
const TOOLS_PARAMETER_DEFAULTS: Readonly<Partial<Record<ToolsParameter, number>>> = {
  num_workers: 1,
  cpu_per_worker: 1,
};

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
  /**
   * The `tools_parameters` that hold a whole number >= 1 (`num_workers` and `cpu_per_worker`
   * default to 1); read them with {@linkcode toolsParameter}.
   */
  toolsParameters: Readonly<Partial<Record<ToolsParameter, number>>>;
  /** `dst_image_folder`, absolute: successes files go to `server=<S>/data_<uuid>.parquet`. */
  dstImageFolder: string;
  /** `dst_error_folder`, absolute: errors files go to `server=<S>/errors_<uuid>.parquet`. */
  dstErrorFolder: string;
  /** The `data_transfer:` section with defaults applied. */
  transfer: TransferSettings;
  /** Things in the file that are accepted but probably not what the user meant, one line each. */
  warnings: readonly string[];
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
  steal: true,
});

/** The environment variable the toolbox sets to name the config file. */
export const CONFIG_ENV = "CONFIG_PATH";

/**
 * A `tools_parameters` value. Throws {@linkcode ConfigError} when it is not a whole number
 * >= 1 (a phase that uses a key names it when it loads the config, so this is a last guard).
 */
export function toolsParameter(config: Config, key: ToolsParameter): number {
  const v = config.toolsParameters[key];
  if (v === undefined) {
    throw new ConfigError(
      `${config.configPath}: key 'tools_parameters.${key}': expected a whole number >= 1`,
    );
  }
  return v;
}

/** World size of the worker jobs: `max_nodes * workers_per_node`. */
export function worldSize(config: Config): number {
  return toolsParameter(config, "max_nodes") * toolsParameter(config, "workers_per_node");
}

/**
 * Reads, parses and validates a config file, and checks that `path_to_output_folder` is a
 * folder holding the images folder (the downloader's output), so that no phase creates
 * anything under a wrong path. `uses` names the `tools_parameters` the calling phase needs.
 * Throws {@linkcode ConfigError} with every problem found.
 */
export async function loadConfig(
  path: string,
  uses: readonly ToolsParameter[] = [],
): Promise<Config> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await Deno.readTextFile(abs);
  } catch (err) {
    const reason = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.IsADirectory
      ? "is a folder, expected a YAML file"
      : errorMessage(err);
    throw new ConfigError(`${abs}: cannot read the config file: ${reason}`);
  }
  const { config, problems, foldersRead } = examineConfig(text, abs, uses);
  if (foldersRead) problems.push(...await missingFolders(config));
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * Parses config text; `path` names the file in messages and anchors relative paths; `uses`
 * names the `tools_parameters` to check. Nothing on disk is looked at. Throws
 * {@linkcode ConfigError} with every problem found.
 */
export function parseConfig(
  text: string,
  path: string,
  uses: readonly ToolsParameter[] = [],
): Config {
  const { config, problems } = examineConfig(text, path, uses);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** What {@linkcode examineConfig} found: a config (meaningful only without problems). */
interface Examined {
  config: Config;
  problems: string[];
  /** Every path key was read without a problem (the folders can be looked at on disk). */
  foldersRead: boolean;
}

function examineConfig(text: string, path: string, uses: readonly ToolsParameter[]): Examined {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const first = errorMessage(err).split("\n")[0];
    throw new ConfigError(`${path}: not valid YAML: ${first}`);
  }
  if (!isMapping(doc)) {
    throw new ConfigError(`${path}: expected a YAML mapping of keys at the top level`);
  }
  const r = new KeyReader(path, doc);
  const base = dirname(path);
  const output = r.string("path_to_output_folder");
  const images = r.string("output_structure.images_folder");
  const tools = r.string("output_structure.tools_folder");
  const dstImages = r.string("dst_image_folder");
  const dstErrors = r.string("dst_error_folder");
  const outputFolder = resolve(base, output);
  const config: Config = {
    configPath: path,
    outputFolder,
    imagesFolder: resolve(outputFolder, images),
    toolsFolder: resolve(outputFolder, tools),
    toolsParameters: readToolsParameters(r, uses),
    dstImageFolder: resolve(base, dstImages),
    dstErrorFolder: resolve(base, dstErrors),
    transfer: readTransferSettings(r),
    warnings: [
      ...misplacedSections(path, doc),
      ...(r.get("data_transfer.verify_mode") === "bytes"
        ? [
          `${path}: data_transfer.verify_mode: bytes now does the same as md5: every byte of ` +
          `the copy is read back from storage and compared with the source, and the MD5 recorded`,
        ]
        : []),
      ...[
        r.retired(
          "data_transfer.drop_cache",
          "is no longer used and is ignored: every copy is read back from storage (O_DIRECT, " +
            "or after its pages are dropped where O_DIRECT is refused)",
        ),
      ].filter((w) => w !== null),
    ],
  };
  r.refuseUnread("data_transfer");
  const pathsRead = [output, images, tools, dstImages, dstErrors].every((p) => p !== "");
  if (pathsRead) checkFolders(r, config);
  return { config, problems: r.problems, foldersRead: pathsRead };
}

function readToolsParameters(
  r: KeyReader,
  uses: readonly ToolsParameter[],
): Partial<Record<ToolsParameter, number>> {
  r.mapping("tools_parameters");
  const out: Partial<Record<ToolsParameter, number>> = {};
  for (const key of TOOLS_PARAMETERS) {
    const v = r.get(`tools_parameters.${key}`);
    const fallback = TOOLS_PARAMETER_DEFAULTS[key];
    if ((v === undefined || v === null) && fallback !== undefined) out[key] = fallback;
    else if (typeof v === "number" && Number.isSafeInteger(v) && v >= 1) out[key] = v;
    else if (uses.includes(key)) {
      const placeholder = v === 0 ? " (0 is the toolbox's placeholder: set it)" : "";
      r.fail(`tools_parameters.${key}`, `a whole number >= 1${placeholder}`, v);
    }
  }
  return out;
}

/**
 * Warnings for a `data_transfer` mapping anywhere but at the top level: it is ignored, and
 * most likely indented by mistake (for example appended to a file without a final newline).
 */
function misplacedSections(path: string, doc: YamlMapping): string[] {
  const found: string[] = [];
  const walk = (node: unknown, where: string, depth: number) => {
    if (depth > 8) return;
    if (Array.isArray(node)) node.forEach((v, i) => walk(v, `${where}[${i}]`, depth + 1));
    if (!isMapping(node)) return;
    for (const [key, value] of Object.entries(node)) {
      const at = where === "" ? key : `${where}.${key}`;
      if (depth > 0 && key === "data_transfer" && isMapping(value)) found.push(at);
      walk(value, at, depth + 1);
    }
  };
  walk(doc, "", 0);
  return found.map((at) =>
    `${path}: key '${at}' is ignored: this tool reads its settings from 'data_transfer:' at ` +
    "the top level of the file; check the indentation (a file appended to without a final " +
    "newline can end up indented)"
  );
}

/**
 * Problems of folders on disk: `path_to_output_folder` must be a folder and hold the images
 * folder, or the config does not point at the downloader's output (nothing is created then).
 */
async function missingFolders(config: Config): Promise<string[]> {
  const isFolder = async (p: string): Promise<string | null> => {
    try {
      return (await Deno.stat(p)).isDirectory ? null : "it is not a folder";
    } catch (err) {
      return err instanceof Deno.errors.NotFound ? "no such folder" : errorMessage(err);
    }
  };
  const output = await isFolder(config.outputFolder);
  if (output !== null) {
    return [
      `${config.configPath}: key 'path_to_output_folder': ${config.outputFolder} is not a ` +
      `readable folder (${output}); set it to the downloader's output folder`,
    ];
  }
  const images = await isFolder(config.imagesFolder);
  if (images !== null) {
    return [
      `${config.configPath}: key 'output_structure.images_folder': ${config.imagesFolder} is ` +
      `not a readable folder (${images}); is path_to_output_folder the downloader's output?`,
    ];
  }
  return [];
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
    steal: r.bool("data_transfer.steal", d.steal),
  };
}

function checkFolders(r: KeyReader, c: Config): void {
  const pairs: Array<[string, string]> = [
    ["dst_image_folder", c.dstImageFolder],
    ["dst_error_folder", c.dstErrorFolder],
  ];
  for (const [key, dst] of pairs) {
    if (isWithin(c.imagesFolder, dst)) {
      r.report(
        `key '${key}': ${dst} lies inside the source tree ${c.imagesFolder}; ` +
          `expected a folder outside output_structure.images_folder`,
      );
    } else if (isWithin(dst, c.imagesFolder)) {
      r.report(
        `key '${key}': ${dst} contains the source tree ${c.imagesFolder}; ` +
          `expected a folder that neither holds nor lies inside the source`,
      );
    } else if (isWithin(dst, c.toolsFolder) || isWithin(c.toolsFolder, dst)) {
      r.report(
        `key '${key}': ${dst} overlaps the tools folder ${c.toolsFolder}; ` +
          `expected a separate folder (readers glob the dataset folders)`,
      );
    }
  }
  const [img, err] = [c.dstImageFolder, c.dstErrorFolder];
  if (isWithin(img, err) || isWithin(err, img)) {
    const how = img === err ? "is the same folder as" : "overlaps";
    r.report(
      `key 'dst_error_folder': ${err} ${how} dst_image_folder ${img}; expected two separate ` +
        `folders (one dataset of successes files, one of errors files: their schemas differ)`,
    );
  }
  if (isWithin(c.toolsFolder, c.imagesFolder) || isWithin(c.imagesFolder, c.toolsFolder)) {
    r.report(
      `key 'output_structure.tools_folder': ${c.toolsFolder} overlaps the source ` +
        `tree ${c.imagesFolder}; expected separate folders`,
    );
  }
}
