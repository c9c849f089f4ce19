/**
 * Test fixtures: temporary workspaces with a config and a small downloader tree of plain
 * files (the filter and schedule phases do not read file contents).
 * @module
 */

import { join } from "node:path";
import { dump } from "js-yaml";
import { writePartition } from "../../tools/gen/generate_tree.ts";
import { repositoryRoot } from "../../core/repository_root.ts";

/** A temporary workspace with a config file. */
export interface Workspace {
  /** Root of the workspace. */
  dir: string;
  /** Path of the config file. */
  configPath: string;
  /** The source tree (`<dir>/out/images`). */
  images: string;
  /** The tool folder (`<dir>/out/tools/data_transfer`). */
  tool: string;
  /** Dataset folder of successes files. */
  dstImages: string;
  /** Dataset folder of errors files. */
  dstErrors: string;
}

/** Options of {@linkcode makeWorkspace}. */
export interface WorkspaceOptions {
  /** `max_nodes` (default 1). */
  maxNodes?: number;
  /** `workers_per_node` (default 2). */
  workersPerNode?: number;
  /** The `data_transfer:` section. */
  transfer?: Record<string, unknown>;
}

/** Creates a workspace in a fresh temporary folder. */
export async function makeWorkspace(options: WorkspaceOptions = {}): Promise<Workspace> {
  const dir = await Deno.makeTempDir({ prefix: "dt-test-" });
  const configPath = join(dir, "config.yaml");
  const doc: Record<string, unknown> = {
    path_to_output_folder: "out",
    output_structure: { images_folder: "images", tools_folder: "tools", urls_folder: "urls" },
    account: "ignored",
    scripts: { whatever: 1 },
    tools_parameters: {
      num_workers: 1,
      max_nodes: options.maxNodes ?? 1,
      workers_per_node: options.workersPerNode ?? 2,
      cpu_per_worker: 1,
    },
    dst_image_folder: "dataset/images",
    dst_error_folder: "dataset/errors",
  };
  if (options.transfer) doc.data_transfer = options.transfer;
  await Deno.writeTextFile(configPath, dump(doc));
  const images = join(dir, "out", "images");
  await Deno.mkdir(images, { recursive: true });
  return {
    dir,
    configPath,
    images,
    tool: join(dir, "out", "tools", "data_transfer"),
    dstImages: join(dir, "dataset", "images"),
    dstErrors: join(dir, "dataset", "errors"),
  };
}

/** Deterministic pseudo-random bytes (xorshift32) for test files. */
export function pseudoRandomBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * Adds a partition holding real parquet files (parquet-wasm, the downloader's schemas) of
 * about `successes` and `errors` bytes; `completed` controls the marker. Returns the folder.
 */
export async function addPartition(
  ws: Workspace,
  server: string,
  partition: string | number,
  options: { successes?: number; errors?: number; completed?: boolean; seed?: number } = {},
): Promise<string> {
  const dir = join(ws.images, `server_name=${server}`, `partition_id=${partition}`);
  const imageBytes = 1000;
  await writePartition(dir, {
    server,
    key: `${server}/${partition}/${options.seed ?? 0}`,
    successRows: Math.max(1, Math.round((options.successes ?? 5000) / imageBytes)),
    errorRows: Math.max(1, Math.round((options.errors ?? 300) / 60)),
    imageBytes,
  });
  if (options.completed ?? true) await Deno.writeFile(join(dir, "completed"), new Uint8Array());
  return dir;
}

/** Result of running an entry point. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text. */
  stderr: string;
}

/** Root of the repository. */
export const REPO: string = repositoryRoot();

/** Runs `deno run -A <repo>/<script> ...args` and captures its output. */
export async function runScript(
  script: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO, script), ...args],
    env: { NO_COLOR: "1", ...options.env },
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Every non-folder entry below `dir` (symlinks not followed), sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** Files of both dataset folders (temporaries included, `_MD5SUMS` of verify excluded). */
export function datasetFiles(ws: Workspace): string[] {
  return [...listFiles(ws.dstImages), ...listFiles(ws.dstErrors)]
    .filter((p) => !p.endsWith("/_MD5SUMS")).sort();
}
