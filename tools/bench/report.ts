/**
 * The benchmark's figures of one tree as Markdown tables: every contender, the tool's time
 * over each peer's, its path-based metadata calls per system call, and the targets.
 * @module
 */

import { formatBytes } from "../../core/format.ts";
import type { ToolPathCalls } from "./tool.ts";
import type { Target, TreeFigures } from "./targets.ts";
import type { TreeName } from "./tree.ts";

/** Everything the benchmark found on one tree (as written to `bench.json`). */
export interface TreeResult extends TreeFigures {
  /** Which tree. */
  name: TreeName;
  /** The images folder. */
  path: string;
  /** Files a transfer moves. */
  files: number;
  /** Their bytes. */
  bytes: number;
  /** Smallest file, bytes. */
  smallestBytes: number;
  /** Largest file, bytes. */
  largestBytes: number;
  /** How the tree is made, for people. */
  description: string;
  /** The contender every time is compared with (`cp`). */
  floor: string;
  /** The tool's path-based calls per file and its run with nothing to do. */
  pathCalls: ToolPathCalls;
  /** The targets that apply to this tree. */
  targets: Target[];
}

function fmt(n: number | null | undefined, digits = 2): string {
  return n === null || n === undefined || !Number.isFinite(n) ? "n/a" : n.toFixed(digits);
}

function table(head: string[], rows: string[][]): string[] {
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ];
}

/** Formats the figures of one tree. */
export function formatTree(r: TreeResult, rounds: number): string {
  const floor = r.contenders[r.floor];
  const lines = [
    `## ${r.name} tree: ${r.files} files, ${formatBytes(r.bytes)} (${
      formatBytes(r.smallestBytes)
    } to ${formatBytes(r.largestBytes)}); ${r.description}`,
    `${rounds} round(s); medians; times include a final sync; ratios are to ` +
    `${floor?.short ?? r.floor}`,
    "",
  ];
  const rows = Object.entries(r.contenders).map(([id, c]) => {
    if (c.skipped !== null) return [c.label, `skipped: ${c.skipped}`, "", "", "", "", "", ""];
    const runs = c.runs.map((x) => fmt(x.seconds) + (x.invalid === null ? "" : " (invalid)"));
    const steps = Object.entries(c.steps).map(([n, s]) => `${n} ${fmt(s.medianSeconds)}`);
    return [
      c.label,
      fmt(c.medianSeconds),
      runs.join(", "),
      `${fmt(id === r.floor ? 1 : r.ratios[id]?.[r.floor])}x`,
      `${fmt(c.deviceReadsPerByte)} / ${fmt(c.processReadsPerByte)}`,
      fmt(c.cpuSecondsPerGiB),
      fmt(c.peakRssMiB, 0),
      steps.join(", "),
    ];
  });
  lines.push(
    ...table([
      "contender",
      "median s",
      "runs s",
      `/ ${floor?.short ?? r.floor}`,
      "reads/byte: device (least) / own",
      "CPU s/GiB",
      "peak RSS MiB",
      "steps, median s",
    ], rows),
  );
  const tools = Object.keys(r.ratios).filter((k) => k.startsWith("tool-"));
  const runCpu = tools.map((t) =>
    `${r.contenders[t].short} ${fmt(r.contenders[t].steps.run?.cpuSecondsPerGiB ?? null)}`
  );
  lines.push("", `CPU s/GiB of the run phase alone (all ranks): ${runCpu.join(", ")}`);
  const peers = Object.keys(r.contenders).filter((k) =>
    !k.startsWith("tool-") && r.contenders[k].medianSeconds !== null
  );
  if (tools.length > 0 && peers.length > 0) {
    lines.push(
      "",
      ...table(
        ["time of this tool / time of", ...peers.map((p) => r.contenders[p].short)],
        tools.map((t) => [r.contenders[t].short, ...peers.map((p) => `${fmt(r.ratios[t][p])}x`)]),
      ),
    );
  }
  const pc = r.pathCalls;
  lines.push(
    "",
    `path-based metadata calls of the md5 run phase (strace -f -c over the launcher and all ` +
      `ranks, minus a run with nothing to do): ${fmt(pc.perFile, 1)} per file ` +
      `(${pc.total} over ${pc.files} files); the run with nothing to do took ` +
      `${fmt(pc.idleRunSeconds)} s`,
    "",
    ...table(
      ["system call", "run", "nothing to do", "per file"],
      Object.entries(pc.bySyscall).map((
        [n, c],
      ) => [n, String(c.run), String(c.idle), fmt(c.perFile)]),
    ),
    "",
    ...targetTable(r.targets),
  );
  return lines.join("\n");
}

/** The targets as a Markdown table: what, wanted, measured, met. */
export function targetTable(targets: readonly Target[]): string[] {
  return table(
    ["target", "wanted", "measured", "met"],
    targets.map((t) => [t.name, t.wanted, fmt(t.value), t.met ? "yes" : "NO"]),
  );
}
