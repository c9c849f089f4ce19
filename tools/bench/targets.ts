/**
 * The targets of issue 13, evaluated on one tree's figures: `md5` mode within 1.3x of
 * `cp -r && sync`, device reads per byte between 1.9 and 2.2, at most 2.5 CPU s/GiB and at most
 * 8 path-based metadata calls per file on the small-file and real-size trees; within 1.3x of
 * `md5sum` on the single large file. And those of issue 16 on the slow-rank scenario: the fast
 * rank moves at least 70% of the bytes, in at most half the time of the run without stealing.
 * @module
 */

import type { ContenderFigures } from "./figures.ts";
import type { PathCalls } from "./path_calls.ts";
import type { SlowRankFigures } from "./slow_rank.ts";
import type { TreeName } from "./tree.ts";

/** One target and whether this run met it. */
export interface Target {
  /** The tree it was measured on. */
  tree: TreeName;
  /** What is measured. */
  name: string;
  /** The wanted value, for people. */
  wanted: string;
  /** The measured value, or null when it could not be measured. */
  value: number | null;
  /** Whether the value meets the target (false when not measured). */
  met: boolean;
}

/** The figures of a tree that the targets look at. */
export interface TreeFigures {
  /** Figures per contender id. */
  contenders: Record<string, ContenderFigures>;
  /** Median time ratios per contender pair. */
  ratios: Record<string, Record<string, number>>;
  /** The tool's path-based calls per file. */
  pathCalls: PathCalls;
}

function target(
  tree: TreeName,
  name: string,
  wanted: string,
  value: number | null | undefined,
  ok: (v: number) => boolean,
): Target {
  const v = value ?? null;
  return { tree, name, wanted, value: v, met: v !== null && ok(v) };
}

/** Evaluates the targets that apply to `tree`. */
export function targetsFor(tree: TreeName, f: TreeFigures): Target[] {
  const md5 = f.ratios["tool-md5"] ?? {};
  if (tree === "single") {
    return [
      target(tree, "md5 mode time / md5sum of the file", "<= 1.3", md5.md5sum, (v) => v <= 1.3),
    ];
  }
  const tool = f.contenders["tool-md5"];
  return [
    target(tree, "md5 mode time / cp -r && sync", "<= 1.3", md5.cp, (v) => v <= 1.3),
    target(
      tree,
      "device reads per byte transferred, md5 mode",
      "1.9 to 2.2",
      tool?.deviceReadsPerByte,
      (v) => v >= 1.9 && v <= 2.2,
    ),
    target(
      tree,
      "CPU s per GiB, md5 mode, run phase, all ranks",
      "<= 2.5",
      tool?.steps.run?.cpuSecondsPerGiB,
      (v) => v <= 2.5,
    ),
    target(
      tree,
      "path-based metadata calls per file",
      "<= 8",
      f.pathCalls.perFile,
      (v) => v <= 8,
    ),
  ];
}

/** Evaluates the targets of the slow-rank scenario, run on `tree`. */
export function slowRankTargets(tree: TreeName, f: SlowRankFigures): Target[] {
  return [
    target(
      tree,
      "slow rank: share of the bytes the fast rank moved, stealing on",
      ">= 0.70",
      f.fastShare,
      (v) => v >= 0.7,
    ),
    target(
      tree,
      "slow rank: wall time without stealing / with stealing",
      ">= 2.0",
      f.speedup,
      (v) => v >= 2,
    ),
  ];
}
