/**
 * Trees and workspaces of the benchmark: generates (or reuses) downloader trees with one or
 * more runs of `tools/gen.ts`, lists the files a transfer moves, and writes per-run configs.
 * @module
 */

import { join } from "node:path";
import { dump } from "js-yaml";
import { timed } from "./proc.ts";
import { repositoryRoot } from "../../core/repository_root.ts";

/** Root of the repository. */
export const REPO: string = repositoryRoot();

/** The trees of the benchmark: many small files, real-size files, one large file. */
export type TreeName = "small" | "large" | "single";

/** Every tree, in the order the benchmark runs them. */
export const TREE_NAMES: readonly TreeName[] = ["small", "large", "single"];

/** One run of `tools/gen.ts`: its arguments that define a tree. */
export interface GenPart {
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

/**
 * A tree made of one or more generator runs. The partitions of later runs are renumbered after
 * those of earlier runs of the same server, so that runs with different `rows` give one tree
 * with the file sizes wanted.
 */
export interface TreeSpec {
  /** Generator runs, in order. */
  parts: GenPart[];
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

function genArgs(part: GenPart, out: string): string[] {
  const args = [
    "run",
    "-A",
    join(REPO, "tools/gen.ts"),
    "--out",
    out,
    "--servers",
    String(part.servers),
    "--partitions",
    String(part.partitions),
    "--rows",
    String(part.rows),
    "--image-bytes",
    String(part.imageBytes),
    "--seed",
    String(part.seed),
    "--incomplete",
    "0",
    "--quiet",
  ];
  if (part.sizeSpread) args.push("--size-spread");
  return args;
}

/** Generates the parts of `spec` two at a time (one per core) into `<dir>.parts/<k>`. */
async function generateParts(dir: string, spec: TreeSpec): Promise<string[]> {
  const outs = spec.parts.map((_, k) => join(`${dir}.parts`, String(k)));
  let next = 0;
  const worker = async () => {
    while (next < spec.parts.length) {
      const k = next++;
      await timed(Deno.execPath(), genArgs(spec.parts[k], outs[k]));
    }
  };
  await Promise.all([worker(), worker()]);
  return outs;
}

/** Moves the partitions of every generated part into `dir`, numbering them part after part. */
async function mergeParts(dir: string, outs: string[]): Promise<void> {
  const offsets = new Map<string, number>();
  for (const out of outs) {
    for (const partition of await listPartitions(out)) {
      const parts = partition.split("/");
      const server = parts[parts.length - 2];
      const id = offsets.get(server) ?? 0;
      offsets.set(server, id + 1);
      await Deno.mkdir(join(dir, server), { recursive: true });
      await Deno.rename(partition, join(dir, server, `partition_id=${id}`));
    }
  }
}

/**
 * Returns the tree `dir`, generating it unless a tree of the same spec is already there (the
 * spec is kept in `<dir>.spec.json`; the generator is deterministic). Every partition is
 * completed.
 */
export async function ensureTree(dir: string, spec: TreeSpec, regen = false): Promise<Tree> {
  const specPath = `${dir}.spec.json`;
  const wanted = JSON.stringify(spec);
  const have = await Deno.readTextFile(specPath).catch(() => null);
  let generatedSeconds = 0;
  if (regen || have !== wanted) {
    const started = performance.now();
    await Deno.remove(specPath).catch(() => {});
    for (const path of [dir, `${dir}.parts`]) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
    const outs = await generateParts(dir, spec);
    await mergeParts(dir, outs);
    await Deno.remove(`${dir}.parts`, { recursive: true });
    await Deno.writeTextFile(specPath, wanted);
    generatedSeconds = (performance.now() - started) / 1000;
  }
  const files = await listTreeFiles(dir);
  return {
    images: dir,
    files,
    bytes: files.reduce((s, f) => s + f.bytes, 0),
    generatedSeconds,
  };
}

/** Lists the `partition_id=<P>` folders of every server of a tree, completed or not. */
async function listPartitions(images: string): Promise<string[]> {
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
  await Deno.writeTextFile(configPath, dump(doc));
  return {
    dir,
    configPath,
    tool: join(dir, "out", "tools", "data_transfer"),
    dataset: join(dir, "dataset"),
  };
}
