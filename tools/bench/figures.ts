/**
 * Figures of a contender from its timed runs (medians over the valid runs), and the ratios of
 * every contender's median time to every other's.
 * @module
 */

import type { ContenderNames } from "./contenders.ts";
import type { Measured } from "./measure.ts";
import { median } from "./proc.ts";

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/** One timed run as `bench.json` keeps it. */
export interface RunRecord {
  /** Round, from 1. */
  round: number;
  /** Wall time including the final `sync`, seconds. */
  seconds: number;
  /** User + system CPU of every process of the run, seconds. */
  cpuSeconds: number;
  /** Bytes read from the device during the run, or null when not measured. */
  deviceReadBytes: number | null;
  /** Bytes the run's processes caused to be read from storage (`ru_inblock`). */
  processReadBytes: number;
  /** Peak RSS of the run's largest process, bytes. */
  peakRssBytes: number;
  /** Each command of the run. */
  steps: { name: string; seconds: number; cpuSeconds: number }[];
  /** Why the run is invalid (left out of the figures), or null. */
  invalid: string | null;
}

/** Keeps what `bench.json` records of a measured run. */
export function runRecord(round: number, m: Measured, invalid: string | null): RunRecord {
  return {
    round,
    seconds: m.seconds,
    cpuSeconds: m.cpuSeconds,
    deviceReadBytes: m.deviceReadBytes,
    processReadBytes: m.processReadBytes,
    peakRssBytes: m.peakRssBytes,
    steps: m.steps.map((s) => ({ name: s.name, seconds: s.seconds, cpuSeconds: s.cpuSeconds })),
    invalid,
  };
}

/**
 * A contender's figures on one tree: medians over its valid runs, except device reads, whose
 * least value is kept (other processes' reads can only add to the device's counter).
 */
export interface ContenderFigures {
  /** Its name in `bench.json`. */
  id: string;
  /** Short name for table columns. */
  short: string;
  /** What it runs. */
  label: string;
  /** Why it did not run, or null. */
  skipped: string | null;
  /** Every timed run, valid or not. */
  runs: RunRecord[];
  /** Wall time, seconds (null without a valid run). */
  medianSeconds: number | null;
  /**
   * Bytes read from the device per byte transferred, least over the runs: on a shared machine
   * other processes' reads only add to it (null when not measured).
   */
  deviceReadsPerByte: number | null;
  /** The same, median over the runs. */
  deviceReadsPerByteMedian: number | null;
  /** Bytes the contender's own processes read from storage per byte transferred. */
  processReadsPerByte: number | null;
  /** User + system CPU seconds of all its processes per GiB transferred. */
  cpuSecondsPerGiB: number | null;
  /** Per command: wall time and CPU seconds per GiB transferred. */
  steps: Record<string, { medianSeconds: number; cpuSecondsPerGiB: number }>;
  /** Largest peak RSS of one of its processes over its valid runs, MiB. */
  peakRssMiB: number | null;
}

/** A finite number, or null (JSON has no NaN). */
function finite(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}

/** The figures of a contender that ran `runs` on a tree of `bytes` bytes. */
export function contenderFigures(
  names: ContenderNames,
  runs: RunRecord[],
  bytes: number,
): ContenderFigures {
  const ok = runs.filter((r) => r.invalid === null);
  const med = (f: (r: RunRecord) => number) => finite(median(ok.map(f)));
  const steps: ContenderFigures["steps"] = {};
  for (const name of new Set(ok.flatMap((r) => r.steps.map((s) => s.name)))) {
    const of = ok.map((r) => r.steps.find((s) => s.name === name)!);
    steps[name] = {
      medianSeconds: median(of.map((s) => s.seconds)),
      cpuSecondsPerGiB: median(of.map((s) => s.cpuSeconds / (bytes / GIB))),
    };
  }
  const device = ok.length > 0 && ok.every((r) => r.deviceReadBytes !== null)
    ? ok.map((r) => r.deviceReadBytes! / bytes)
    : null;
  return {
    id: names.id,
    short: names.short,
    label: names.label,
    skipped: null,
    runs,
    medianSeconds: med((r) => r.seconds),
    deviceReadsPerByte: device === null ? null : Math.min(...device),
    deviceReadsPerByteMedian: device === null ? null : median(device),
    processReadsPerByte: med((r) => r.processReadBytes / bytes),
    cpuSecondsPerGiB: med((r) => r.cpuSeconds / (bytes / GIB)),
    steps,
    peakRssMiB: ok.length === 0 ? null : Math.max(...ok.map((r) => r.peakRssBytes)) / MIB,
  };
}

/** The figures of a contender that did not run, and why. */
export function skippedFigures(names: ContenderNames, why: string): ContenderFigures {
  return {
    id: names.id,
    short: names.short,
    label: names.label,
    skipped: why,
    runs: [],
    medianSeconds: null,
    deviceReadsPerByte: null,
    deviceReadsPerByteMedian: null,
    processReadsPerByte: null,
    cpuSecondsPerGiB: null,
    steps: {},
    peakRssMiB: null,
  };
}

/** `ratios[a][b]`: median time of `a` over median time of `b`, for every pair that ran. */
export function ratiosOf(
  contenders: Record<string, ContenderFigures>,
): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [a, fa] of Object.entries(contenders)) {
    if (fa.medianSeconds === null) continue;
    out[a] = {};
    for (const [b, fb] of Object.entries(contenders)) {
      if (b !== a && fb.medianSeconds !== null) out[a][b] = fa.medianSeconds / fb.medianSeconds;
    }
  }
  return out;
}
