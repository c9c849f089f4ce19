/**
 * The contenders of the benchmark, each a list of commands timed as one run: this tool,
 * `md5sum`/`cp` per file, `cp -r` (the floor), `md5sum` alone, and mpiFileUtils' `dcp` then
 * `dcmp` with and without dropping the page cache between the two.
 * @module
 */

import { join } from "node:path";
import type { Step, StepResult } from "./measure.ts";
import { dcmpDifference, type MpiFileUtils } from "./mpifileutils.ts";
import { DROP_CACHES_COMMAND } from "./proc.ts";
import { checkRunSummary, MPIRUN, RANKS, TOOL_WARM, toolSteps } from "./tool.ts";
import { makeWorkspace, type Tree } from "./tree.ts";

/** Names of the contenders. */
export type ContenderId =
  | "tool-md5"
  | "md5sum-cp"
  | "cp"
  | "md5sum"
  | "dcp-dcmp"
  | "dcp-drop-dcmp";

/** A contender's run, prepared (untimed) and ready to be timed. */
export interface PreparedRun {
  /** The commands, run one after the other. */
  steps: Step[];
  /**
   * After the run: why it is invalid (its figures are then left out), or null when valid.
   * Throws when the tool failed.
   */
  check(results: StepResult[]): Promise<string | null>;
}

/** One contender. */
export interface Contender {
  /** Its name in `bench.json`. */
  id: ContenderId;
  /** Short name for table columns. */
  short: string;
  /** What it runs, for people. */
  label: string;
  /** Commands that load its programs, run after the page cache is dropped. */
  warm: string[][];
  /** Prepares a run writing below the fresh folder `dir` (untimed). */
  prepare(dir: string): Promise<PreparedRun>;
}

const valid = () => Promise.resolve(null);

/** This tool (`verify_mode: md5`): filter, schedule and run with 2 ranks. */
export function toolContender(tree: Tree): Contender {
  return {
    id: "tool-md5",
    short: "tool md5",
    label: `this tool, md5 mode (filter + schedule + run, ${RANKS} ranks)`,
    warm: TOOL_WARM,
    async prepare(dir) {
      const ws = await makeWorkspace(dir, tree.images, { verify_mode: "md5" });
      return {
        steps: toolSteps(ws),
        check: async () => {
          await checkRunSummary(ws, tree.files.length, 0);
          return null;
        },
      };
    },
  };
}

/** The per-file script: hash the source, copy, hash the copy, compare. */
const PER_FILE_SCRIPT = 'a=$(md5sum < "$1") && cp -- "$1" "$2" && b=$(md5sum < "$2") && ' +
  '[ "$a" = "$b" ] || { echo "mismatch or error: $1" >&2; exit 1; }';

/** `md5sum src; cp src dst; md5sum dst` per file, two files at a time (`xargs -P 2`). */
export function md5sumCpContender(tree: Tree): Contender {
  return {
    id: "md5sum-cp",
    short: "md5sum+cp",
    label: "md5sum src; cp; md5sum copy, per file, xargs -P 2",
    warm: [["xargs", "--version"], ["md5sum", "--version"], ["cp", "--version"]],
    async prepare(dir) {
      const list: string[] = [];
      for (const f of tree.files) {
        await Deno.mkdir(join(dir, f.server), { recursive: true });
        list.push(f.path, join(dir, f.server, `${f.partition}_${f.kind}.parquet`));
      }
      const listPath = join(dir, "files.list");
      await Deno.writeTextFile(listPath, list.join("\0") + "\0");
      const script = `xargs -0 -n 2 -P ${RANKS} sh -c '${PER_FILE_SCRIPT}' sh < "$1"`;
      return {
        steps: [{ name: "xargs", command: ["sh", "-c", script, "sh", listPath] }],
        check: valid,
      };
    },
  };
}

/** The floor: `cp -r` of the whole tree (then the final `sync` every run has). */
export function cpContender(tree: Tree): Contender {
  return {
    id: "cp",
    short: "cp -r",
    label: "cp -r && sync (the floor)",
    warm: [["cp", "--version"]],
    prepare(dir) {
      const steps = [{ name: "cp", command: ["cp", "-r", tree.images, join(dir, "copy")] }];
      return Promise.resolve({ steps, check: valid });
    },
  };
}

/** `md5sum` of every file of the tree in one process: one MD5 stream, no copy. */
export function md5sumContender(tree: Tree): Contender {
  return {
    id: "md5sum",
    short: "md5sum",
    label: "md5sum of the file alone (one process)",
    warm: [["md5sum", "--version"]],
    prepare() {
      const steps = [{ name: "md5sum", command: ["md5sum", ...tree.files.map((f) => f.path)] }];
      return Promise.resolve({ steps, check: valid });
    },
  };
}

/** The names of a contender, without what it runs. */
export type ContenderNames = Pick<Contender, "id" | "short" | "label">;

/** Names of the mpiFileUtils contenders (also when mpiFileUtils is missing). */
export function dcpDcmpNames(dropBetween: boolean): ContenderNames {
  return dropBetween
    ? {
      id: "dcp-drop-dcmp",
      short: "dcp+drop+dcmp",
      label: `mpiFileUtils dcp, drop caches, dcmp (${RANKS} ranks)`,
    }
    : { id: "dcp-dcmp", short: "dcp+dcmp", label: `mpiFileUtils dcp then dcmp (${RANKS} ranks)` };
}

/**
 * mpiFileUtils as users run it: `dcp -q` of the tree, then `dcmp -q`, each with 2 ranks;
 * with `dropBetween`, the page cache is dropped between the two so that `dcmp` reads the copy
 * from storage. A run whose `dcmp` does not report 0 differences is invalid.
 */
export function dcpDcmpContender(tree: Tree, mfu: MpiFileUtils, dropBetween: boolean): Contender {
  const mpi = (
    program: string,
    ...args: string[]
  ) => [MPIRUN, "-n", String(RANKS), program, ...args];
  return {
    ...dcpDcmpNames(dropBetween),
    warm: [mpi(mfu.dcp, "--help"), mpi(mfu.dcmp, "--help")],
    prepare(dir) {
      const copy = join(dir, "copy");
      const steps: Step[] = [{ name: "dcp", command: mpi(mfu.dcp, "-q", tree.images, copy) }];
      if (dropBetween) steps.push({ name: "drop caches", command: DROP_CACHES_COMMAND });
      steps.push({ name: "dcmp", command: mpi(mfu.dcmp, "-q", tree.images, copy) });
      const check = (results: StepResult[]) => {
        const dcmp = results.find((r) => r.name === "dcmp");
        return Promise.resolve(dcmpDifference(dcmp?.output ?? "", tree.files.length));
      };
      return Promise.resolve({ steps, check });
    },
  };
}
