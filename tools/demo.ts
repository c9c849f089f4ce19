/**
 * `deno task demo [--dir DIR]`: the whole pipeline on a generated tree. Writes a config,
 * generates a downloader tree (real parquet, server names with `%3A` and `:`, some partitions
 * not completed), then runs filter, schedule, the runner under `mpirun` with 2 ranks when an
 * MPI launcher is present (one process otherwise, said plainly), verify and status.
 * Exits 0 only when every planned file is verified.
 * @module
 */

import { join } from "node:path";
import { dump } from "js-yaml";
import { parseCommand, runMain, UsageError } from "../core/cli.ts";
import { formatBytes } from "../core/format.ts";
import { generateTree } from "./gen/generate_tree.ts";
import { ExitCode } from "../core/exit_codes.ts";
import { repositoryRoot } from "../core/repository_root.ts";

const REPO = repositoryRoot();

/** Finds an MPI launcher: `mpirun.mpich`, `mpirun.openmpi`, or `mpirun`, in that order. */
async function findLauncher(): Promise<string[] | null> {
  for (const name of ["mpirun.mpich", "mpirun.openmpi", "mpirun"]) {
    try {
      const out = await new Deno.Command(name, {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      })
        .output();
      if (!out.success) continue;
      if (name === "mpirun.openmpi") {
        const root = Deno.uid() === 0 ? ["--allow-run-as-root"] : [];
        return [name, ...root, "--oversubscribe", "-n", "2"];
      }
      return [name, "-n", "2"];
    } catch {
      // not installed
    }
  }
  return null;
}

async function step(title: string, argv: string[]): Promise<number> {
  console.log(`\n== ${title}\n$ ${argv.map((a) => a.replace(REPO + "/", "")).join(" ")}`);
  const env = Deno.env.toObject();
  for (const k of Object.keys(env)) if (/^(OMPI_|PMI_|PMIX_|SLURM_)/.test(k)) delete env[k];
  const status = await new Deno.Command(argv[0], { args: argv.slice(1), env, clearEnv: true })
    .spawn().status;
  return status.code;
}

async function main(): Promise<number> {
  const cmd = parseCommand(
    "demo",
    "Runs the whole pipeline (filter, schedule, run with 2 MPI ranks, verify, status) on a\n" +
      "generated downloader tree in a fresh folder, and shows where the dataset lies.",
    { dir: { type: "string", value: "DIR", help: "an empty or new folder (default: a temp one)" } },
  );
  let dir = cmd.values.dir as string | undefined;
  if (dir) {
    await Deno.mkdir(dir, { recursive: true });
    for await (const _ of Deno.readDir(dir)) {
      throw new UsageError(`demo: --dir ${dir} is not empty; give an empty or new folder`);
    }
  } else {
    dir = await Deno.makeTempDir({ prefix: "data-transfer-demo-" });
  }
  const configPath = join(dir, "config.yaml");
  await Deno.writeTextFile(
    configPath,
    dump({
      path_to_output_folder: "downloader_output",
      output_structure: { images_folder: "images", tools_folder: "tools" },
      tools_parameters: { num_workers: 1, max_nodes: 1, workers_per_node: 2, cpu_per_worker: 1 },
      dst_image_folder: "dataset/images",
      dst_error_folder: "dataset/errors",
    }),
  );
  console.log(`demo: working in ${dir}\ndemo: config ${configPath}`);
  const tree = await generateTree({
    root: join(dir, "downloader_output", "images"),
    servers: ["images.example.org%3A8080", "media.example.net:443", "cdn.example.com"],
    partitionsPerServer: 4,
    rowsPerPartition: { min: 5, max: 60 },
    imageBytes: 20_000,
    errorRows: { min: 1, max: 20 },
    incompleteFraction: 0.17,
    seed: 42,
  });
  console.log(
    `demo: generated ${tree.partitions.length} partitions (${tree.completedPartitions} completed), ` +
      `${tree.files} parquet files, ${formatBytes(tree.bytes)}, ${tree.successRows} image rows`,
  );
  const deno = [Deno.execPath(), "run", "-A"];
  const phase = (
    name: string,
  ) => [...deno, join(REPO, "phases", `${name}.ts`), "--config", configPath];
  if (await step("filter", phase("filter")) !== 0) return ExitCode.Failures;
  if (await step("schedule", phase("schedule")) !== 0) return ExitCode.Failures;
  const launcher = await findLauncher();
  if (!launcher) {
    console.log(
      "\ndemo: no MPI launcher found (mpirun.mpich, mpirun.openmpi, mpirun): " +
        "running the runner as one process",
    );
  }
  const runCode = await step(
    launcher ? `run (${launcher[0]}, 2 ranks)` : "run (one process)",
    [...(launcher ?? []), ...phase("run")],
  );
  const verifyCode = await step("verify", phase("verify"));
  await step("status", phase("status"));
  console.log(
    `\ndemo: the dataset lies in ${join(dir, "dataset")} ` +
      `(images/server=<name>/data_<uuid>.parquet, errors/server=<name>/errors_<uuid>.parquet);` +
      `\ndemo: re-check it with: (cd ${join(dir, "dataset", "images")} && md5sum -c _MD5SUMS)`,
  );
  if (runCode !== 0 || verifyCode !== 0) {
    console.log(`demo: FAILED (run exit ${runCode}, verify exit ${verifyCode})`);
    return ExitCode.Failures;
  }
  console.log("demo: every planned file is verified");
  return ExitCode.Ok;
}

if (import.meta.main) await runMain(main);
