/**
 * Temporaries of this tool in the dataset folders: who wrote them, and removing those whose
 * writer is gone after a crash (never those of a live writer, never a file of anyone else).
 * @module
 */

import { join } from "node:path";
import { parseTemporaryName } from "../layout.ts";
import { isFinalJobState, jobStates } from "../slurm/client.ts";

/** Identity of a writer, embedded in its temporaries' names: `<job>@<node>@<pid>`. */
export interface WriterToken {
  /** Slurm job id, or `none` outside Slurm. */
  job: string;
  /**
   * The node: `SLURMD_NODENAME` under Slurm (the name Slurm and its users know the node by),
   * else the host name.
   */
  host: string;
  /** Process id. */
  pid: number;
}

/**
 * The token of this process, from `SLURM_JOB_ID`, the node (`SLURMD_NODENAME`, else the host
 * name) and the pid. Under Slurm the node's name, not the host name, tells whether a writer ran
 * here (where its pid can be looked up) or elsewhere (where only its job's state tells): nodes
 * may share a host name, as the emulated nodes of the test cluster do.
 */
export function currentToken(env: Record<string, string> = Deno.env.toObject()): WriterToken {
  return {
    job: env.SLURM_JOB_ID || "none",
    host: env.SLURMD_NODENAME || Deno.hostname(),
    pid: Deno.pid,
  };
}

/** Formats a token for a file name. */
export function formatToken(t: WriterToken): string {
  return `${t.job}@${t.host.replace(/[^A-Za-z0-9.-]/g, "_")}@${t.pid}`;
}

/** Parses a token made by {@linkcode formatToken}, or null. */
export function parseToken(text: string): WriterToken | null {
  const m = /^([^@]+)@([^@]+)@(\d+)$/.exec(text);
  return m ? { job: m[1], host: m[2], pid: Number(m[3]) } : null;
}

/**
 * Whether the writer of a temporary may still be alive: `false` only when it is known to be
 * gone (same node and no such process; or, on another node, a Slurm job that is no longer
 * running).
 */
export async function writerMayBeAlive(writer: WriterToken, self: WriterToken): Promise<boolean> {
  const host = formatToken(self).split("@")[1];
  if (writer.host === host) {
    if (writer.pid === self.pid && writer.job === self.job) return true;
    try {
      const cmd = await Deno.readTextFile(`/proc/${writer.pid}/cmdline`);
      return cmd.length > 0;
    } catch {
      return false;
    }
  }
  if (writer.job === "none") return true;
  if (writer.job === self.job) return true;
  const states = await jobStates([writer.job]);
  if (states === null) return true; // squeue cannot tell: the writer may be alive
  const state = states.get(writer.job); // a job Slurm forgot is gone
  return state !== undefined && !isFinalJobState(state);
}

/** Outcome of {@linkcode sweepTemporaries}. */
export interface SweepResult {
  /** Temporaries removed. */
  removed: string[];
  /** Temporaries kept because their writer may be alive. */
  kept: string[];
}

/**
 * Removes, in each of `folders`, this tool's temporaries of the destinations in `finalNames`
 * whose writer is gone. Other files are never touched.
 */
export async function sweepTemporaries(
  folders: Iterable<string>,
  finalNames: ReadonlySet<string>,
  self: WriterToken,
): Promise<SweepResult> {
  const result: SweepResult = { removed: [], kept: [] };
  for (const folder of folders) {
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(folder)];
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    for (const e of entries) {
      const parsed = parseTemporaryName(e.name);
      if (!parsed || !e.isFile || !finalNames.has(join(folder, parsed.finalName))) continue;
      const writer = parseToken(parsed.token);
      const path = join(folder, e.name);
      if (writer && !(await writerMayBeAlive(writer, self))) {
        await Deno.remove(path).catch((err) => {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        });
        result.removed.push(path);
      } else {
        result.kept.push(path);
      }
    }
  }
  return result;
}
