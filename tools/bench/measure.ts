/**
 * One timed run of a contender: its commands one after the other and a final `sync`, each under
 * GNU `time`, with the bytes read from the block device over the whole run.
 * @module
 */

import { type BlockDevice, bytesRead } from "./block_device.ts";
import { dropCaches, timed } from "./proc.ts";

/** One command of a contender's run. */
export interface Step {
  /** Short name in reports: `filter`, `run`, `dcp`, `sync`, ... */
  name: string;
  /** Program and arguments. */
  command: string[];
}

/** What one step took. */
export interface StepResult {
  /** The step's name. */
  name: string;
  /** Wall time, seconds. */
  seconds: number;
  /** User + system CPU of the step's whole process tree, seconds. */
  cpuSeconds: number;
  /** Bytes the step's processes caused to be read from storage. */
  inputBytes: number;
  /** Peak RSS of the step's largest process, bytes. */
  peakRssBytes: number;
  /** Standard output and error. */
  output: string;
}

/** One timed run. */
export interface Measured {
  /** Wall time from the first step's start to the end of the final `sync`, seconds. */
  seconds: number;
  /** Every step, the final `sync` last. */
  steps: StepResult[];
  /** User + system CPU of every step, seconds. */
  cpuSeconds: number;
  /** Bytes read from the device during the run (any process), or null when not measured. */
  deviceReadBytes: number | null;
  /** Bytes the run's own processes caused to be read from storage. */
  processReadBytes: number;
  /** Peak RSS of the run's largest process, bytes. */
  peakRssBytes: number;
}

/**
 * Drops the page cache, then runs the `warm` commands (their output ignored), so that the
 * next run reads its data from storage but not its programs. Returns why the cache could not
 * be dropped, or null.
 */
export async function coldStart(warm: string[][]): Promise<string | null> {
  const note = await dropCaches();
  for (const [cmd, ...args] of warm) await timed(cmd, args, { check: false });
  return note;
}

/**
 * Runs `steps` then `sync`, each under GNU `time`, and measures the whole: wall time, CPU,
 * storage reads of the processes and of `device`. Throws when a step exits non-zero.
 */
export async function measure(steps: Step[], device: BlockDevice | null): Promise<Measured> {
  const all = [...steps, { name: "sync", command: ["sync"] }];
  const before = device === null ? 0 : await bytesRead(device);
  const started = performance.now();
  const results: StepResult[] = [];
  for (const step of all) {
    const r = await timed(step.command[0], step.command.slice(1));
    results.push({
      name: step.name,
      seconds: r.seconds,
      cpuSeconds: r.usage.userSeconds + r.usage.systemSeconds,
      inputBytes: r.usage.inputBytes,
      peakRssBytes: r.usage.peakRssBytes,
      output: r.stdout + r.stderr,
    });
  }
  const seconds = (performance.now() - started) / 1000;
  const after = device === null ? 0 : await bytesRead(device);
  return {
    seconds,
    steps: results,
    cpuSeconds: results.reduce((s, r) => s + r.cpuSeconds, 0),
    deviceReadBytes: device === null ? null : after - before,
    processReadBytes: results.reduce((s, r) => s + r.inputBytes, 0),
    peakRssBytes: Math.max(...results.map((r) => r.peakRssBytes)),
  };
}
