/**
 * Where everything lives: the tool's working folder and the dataset's file names.
 * @module
 */

import { createHash } from "node:crypto";
import { join, normalize } from "node:path";
import type { Config } from "./config.ts";
import { InputError } from "./errors.ts";

/** Name of this tool in the toolbox's tools folder. */
export const TOOL_NAME = "data_transfer";

/** Paths of the tool's working folder `<tools_folder>/data_transfer/`. */
export interface ToolPaths {
  /** `<tools_folder>/data_transfer` */
  root: string;
  /** Folder of filter tables (`*.csv`), one written per filter run that found new files. */
  filterTables: string;
  /** The combined schedule. */
  schedule: string;
  /** Folder of append-only verification logs, one per writer. */
  verification: string;
  /** Folder of per-rank run logs. */
  logs: string;
  /** Phase flags. */
  checkpoint: string;
  /** Submitted Slurm job ids. */
  jobHistory: string;
  /** JSON summary of the last run. */
  runSummary: string;
  /** Parquet manifest of published files. */
  manifest: string;
  /** Lock file serialising the filter and schedule phases. */
  lock: string;
  /** The problems of the last filter run (JSON), re-checked by verify and status. */
  filterProblems: string;
  /** Where `verify --deep --repair` moves damaged published files (never deleted). */
  quarantine: string;
  /** Lock file a run holds for its whole life, naming its holder. */
  runLock: string;
}

/** Returns the paths of the tool's working folder for a config. */
export function toolPaths(config: Config): ToolPaths {
  const root = join(config.toolsFolder, TOOL_NAME);
  return {
    root,
    filterTables: join(root, "filter_table"),
    schedule: join(root, "schedule.csv"),
    verification: join(root, "verification"),
    logs: join(root, "logs"),
    checkpoint: join(root, "tool_checkpoint.yaml"),
    jobHistory: join(root, "job_history.csv"),
    runSummary: join(root, "run_summary.json"),
    manifest: join(root, "manifest.parquet"),
    lock: join(root, ".lock"),
    filterProblems: join(root, "filter_problems.json"),
    quarantine: join(root, "quarantine"),
    runLock: join(root, "run.lock"),
  };
}

/** The two kinds of file a partition contributes. */
export type FileKind = "successes" | "errors";

/** Source file name of each kind inside a partition folder. */
export const SOURCE_FILE: Readonly<Record<FileKind, string>> = {
  successes: "successes.parquet",
  errors: "errors.parquet",
};

/** Longest safe server name in bytes; longer names are shortened with a hash suffix. */
const MAX_SAFE_NAME = 200;

/** Thrown when a server name cannot be made into a folder name. */
export class ServerNameError extends InputError {}

/**
 * Makes a downloader server name safe as a folder name: `%3A` (any case) and `:` become `_`,
 * and so does every other character outside `[A-Za-z0-9._-]`. A result longer than
 * {@linkcode MAX_SAFE_NAME} is cut and given a hash of the full name, so two names never
 * collide by shortening. Throws {@linkcode ServerNameError} for an empty, `.` or `..` result.
 */
export function safeServerName(name: string): string {
  let safe = "";
  for (const ch of name.replace(/%3A/gi, "_")) {
    safe += /^[A-Za-z0-9._-]$/.test(ch) ? ch : "_";
  }
  if (safe === "" || safe === "." || safe === "..") {
    throw new ServerNameError(
      `server name ${JSON.stringify(name)} gives the folder name ${JSON.stringify(safe)}, ` +
        `which is not usable; rename the folder server_name=${name}`,
    );
  }
  if (safe.length > MAX_SAFE_NAME) {
    const hash = createHash("sha256").update(name).digest("hex").slice(0, 16);
    safe = `${safe.slice(0, MAX_SAFE_NAME - 17)}_${hash}`;
  }
  return safe;
}

/** File-name prefix of each kind in the dataset folders. */
const DESTINATION_PREFIX: Readonly<Record<FileKind, string>> = {
  successes: "data",
  errors: "errors",
};

/** The dataset folder that receives the files of `kind`. */
export function datasetFolder(config: Config, kind: FileKind): string {
  return kind === "successes" ? config.dstImageFolder : config.dstErrorFolder;
}

/** Destination path of a source file of `kind` from server `server` under a fresh `id`. */
export function destinationPath(
  config: Config,
  server: string,
  kind: FileKind,
  id: string,
): string {
  return join(
    datasetFolder(config, kind),
    `server=${safeServerName(server)}`,
    `${DESTINATION_PREFIX[kind]}_${id}.parquet`,
  );
}

/** The parts of a destination path `<root>/server=<name>/<data|errors>_<id>.parquet`. */
export interface DestinationParts {
  /** The dataset folder. */
  root: string;
  /** The server folder's name after `server=`. */
  server: string;
  /** The kind, from the file-name prefix. */
  kind: FileKind;
  /** The file's id (`[A-Za-z0-9._-]+`). */
  id: string;
}

/**
 * Splits a destination path made by {@linkcode destinationPath}; `null` when `path` is not of
 * that form (another prefix or extension, a name with other characters, `.` or `..` parts).
 */
export function parseDestinationPath(path: string): DestinationParts | null {
  const m = /^(\/.*)\/server=([^/]+)\/(data|errors)_([A-Za-z0-9._-]+)\.parquet$/.exec(path);
  if (m === null || normalize(path) !== path) return null;
  return { root: m[1], server: m[2], kind: m[3] === "data" ? "successes" : "errors", id: m[4] };
}

/** Suffix of every temporary file this tool writes in a destination folder. */
export const TEMP_SUFFIX = ".dt-tmp";

/**
 * Temporary name for a copy of `dstPath`: hidden (leading `.`, ignored by parquet dataset
 * readers), in the same folder (so publishing is a link on one file system), tagged with the
 * writer's `token` so that concurrent writers never share one.
 */
export function temporaryPath(dstPath: string, token: string): string {
  const slash = dstPath.lastIndexOf("/");
  return `${dstPath.slice(0, slash + 1)}.${dstPath.slice(slash + 1)}.${token}${TEMP_SUFFIX}`;
}

/** Parses a temporary name made by {@linkcode temporaryPath}: the final name and the token. */
export function parseTemporaryName(
  fileName: string,
): { finalName: string; token: string } | null {
  if (!fileName.startsWith(".") || !fileName.endsWith(TEMP_SUFFIX)) return null;
  const inner = fileName.slice(1, -TEMP_SUFFIX.length);
  const m = /^(.+\.parquet)\.([^/]+)$/.exec(inner);
  return m ? { finalName: m[1], token: m[2] } : null;
}
