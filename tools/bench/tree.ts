/**
 * Trees and workspaces of the benchmark: generates (or reuses) downloader trees with
 * `tools/gen.ts`, lists the files a transfer moves, and writes per-run configs.
 * @module
 */

import { join } from "node:path";
import { stringify } from "yaml";
import { timed } from "./proc.ts";

/** Root of the repository. */
export const REPO: string = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** Arguments of `tools/gen.ts` that define a tree. */
export interface TreeSpec {
  /** Servers. */
  servers: number;
  /** Partitions per server. */
  partitions: number;
  /** Mean rows per successes file. */
  rows: number;
  /** Mean image blob bytes. */
  imageBytes: number;
  /** Log-uniform rows over a 100x range. */
  sizeSpread: boolean;
  /** PRNG seed. */
  seed: number;
}

/** One file a transfer of the tree moves. */
export interface TreeFile {
  /** Absolute source path. */
  path: string;
  /** `server_name=<S>` folder name. */
  server: string;
  /** `partition_id=<P>` folder name. */
  partition: string;
  /** `successes` or `errors`. */
  kind: string;
  /** Size in bytes. */
  bytes: number;
}

/** A generated tree and the files of its completed partitions. */
export interface Tree {
  /** The images folder (root of the tree). */
  images: string;
  /** Files of completed partitions, sorted by path. */
  files: TreeFile[];
  /** Their total size. */
  bytes: number;
  /** Seconds spent generating (0 when reused). */
  generatedSeconds: number;
}

function genArgs(spec: TreeSpec, out: string): string[] {
  const args = [
    "run",
    "-A",
    join(REPO, "tools/gen.ts"),
    "--out",
    out,
    "--servers",
    String(spec.servers),
    "--partitions",
    String(spec.partitions),
    "--rows",
    String(spec.rows),
    "--image-bytes",
    String(spec.imageBytes),
    "--seed",
    String(spec.seed),
    "--incomplete",
    "0",
    "--quiet",
  ];
  if (spec.sizeSpread) args.push("--size-spread");
  return args;
}

/**
 * Returns the tree `dir`, generating it unless a tree with the same spec is already there
 * (the spec is kept in `<dir>.spec.json`; the generator is deterministic). Every partition is
 * completed; the incremental scenario removes and restores markers itself.
 */
export async function ensureTree(dir: string, spec: TreeSpec, regen = false): Promise<Tree> {
  const specPath = `${dir}.spec.json`;
  const wanted = JSON.stringify(spec);
  let have: string | null = null;
  try {
    have = await Deno.readTextFile(specPath);
  } catch {
    have = null;
  }
  let generatedSeconds = 0;
  if (regen || have !== wanted) {
    await Deno.remove(specPath).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    const r = await timed(Deno.execPath(), genArgs(spec, dir));
    generatedSeconds = r.seconds;
    await Deno.writeTextFile(specPath, wanted);
  }
  const files = await listTreeFiles(dir);
  return {
    images: dir,
    files,
    bytes: files.reduce((s, f) => s + f.bytes, 0),
    generatedSeconds,
  };
}

/** Lists `successes.parquet` and `errors.parquet` of every partition, completed or not. */
export async function listPartitions(images: string): Promise<string[]> {
  const out: string[] = [];
  for await (const s of Deno.readDir(images)) {
    if (!s.isDirectory || !s.name.startsWith("server_name=")) continue;
    for await (const p of Deno.readDir(join(images, s.name))) {
      if (p.isDirectory && p.name.startsWith("partition_id=")) {
        out.push(join(images, s.name, p.name));
      }
    }
  }
  return out.sort();
}

/** Files a transfer moves: both parquet files of every completed partition. */
export async function listTreeFiles(images: string): Promise<TreeFile[]> {
  const files: TreeFile[] = [];
  for (const dir of await listPartitions(images)) {
    try {
      await Deno.lstat(join(dir, "completed"));
    } catch {
      continue;
    }
    const parts = dir.split("/");
    for (const kind of ["successes", "errors"]) {
      const path = join(dir, `${kind}.parquet`);
      const info = await Deno.lstat(path).catch(() => null);
      if (info?.isFile) {
        files.push({
          path,
          server: parts[parts.length - 2],
          partition: parts[parts.length - 1],
          kind,
          bytes: info.size,
        });
      }
    }
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : 1));
}

/** Paths of one contender run's workspace. */
export interface Workspace {
  /** Root folder (removed after the run). */
  dir: string;
  /** The config file. */
  configPath: string;
  /** The tool folder `<dir>/out/tools/data_transfer`. */
  tool: string;
  /** Dataset folder (images and errors below it). */
  dataset: string;
}

/**
 * Creates a fresh workspace `dir` with a config reading `images` with 2 ranks
 * (`max_nodes: 1`, `workers_per_node: 2`) and the given `data_transfer:` section.
 */
export async function makeWorkspace(
  dir: string,
  images: string,
  transfer: Record<string, unknown>,
): Promise<Workspace> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  // The output folder must exist: no phase creates anything under a folder that does not.
  await Deno.mkdir(join(dir, "out"), { recursive: true });
  const configPath = join(dir, "config.yaml");
  const doc = {
    path_to_output_folder: join(dir, "out"),
    output_structure: { images_folder: images, tools_folder: "tools", urls_folder: "urls" },
    tools_parameters: { num_workers: 1, max_nodes: 1, workers_per_node: 2, cpu_per_worker: 1 },
    dst_image_folder: join(dir, "dataset", "images"),
    dst_error_folder: join(dir, "dataset", "errors"),
    data_transfer: transfer,
  };
  await Deno.writeTextFile(configPath, stringify(doc));
  return {
    dir,
    configPath,
    tool: join(dir, "out", "tools", "data_transfer"),
    dataset: join(dir, "dataset"),
  };
}
