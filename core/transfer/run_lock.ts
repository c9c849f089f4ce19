/**
 * One run at a time on a tool folder. Two runs at once are safe (a file is published by one
 * writer; the other finds it there) but the second would hash everything again; so a run holds
 * `run.lock` in the tool folder for its whole life, and a second run exits 2 naming the first.
 *
 * Only rank 0 takes the lock, for every rank of its job (ranks on other nodes included). The
 * lock is an `flock` on the file, which the kernel releases when its holder dies, and the file
 * names the holder (`<job>@<node>@<pid>`, the writer token of the temporaries), for the message
 * and for file systems where `flock` is not enough:
 * - `flock` granted: a holder named in the file is gone, unless it ran on another node in
 *   another Slurm job that is still running (Lustre mounted with `localflock` gives a lock per
 *   node only, so the name decides there).
 * - `flock` not supported (Lustre with `noflock`): the writer-token rule of the temporaries
 *   decides (a dead process on this host, or a Slurm job that ended, is gone).
 * A holder known to be gone never blocks: its name is replaced. At its end the run empties the
 * file and releases the lock.
 * @module
 */

import { UserError } from "../errors.ts";
import { writeAll } from "../io/write_all.ts";
import { formatToken, parseToken, writerMayBeAlive, type WriterToken } from "./temporaries.ts";

/** Who holds the run lock, as its file records it. */
export interface RunLockHolder {
  /** Writer token of rank 0 of the run: `<job>@<node>@<pid>`. */
  writer: string;
  /** Ranks of the run. */
  ranks: number;
  /** When the run took the lock (ISO 8601). */
  startedAt: string;
}

/** Another run, alive or not known to be gone, holds the tool folder. */
export class RunInProgressError extends UserError {
  /** The holder, as the lock file names it (null when it could not be read). */
  readonly holder: RunLockHolder | null;
  /** Creates the error; the message names the holder and what to do. */
  constructor(message: string, holder: RunLockHolder | null) {
    super(message);
    this.holder = holder;
  }
}

/** Describes a holder for a message: its Slurm job, host and pid, ranks and start. */
function describeHolder(holder: RunLockHolder): string {
  const w = parseToken(holder.writer);
  if (w === null) return `a run recorded as "${holder.writer}"`;
  const job = w.job === "none" ? "" : `Slurm job ${w.job}, `;
  return `${job}rank 0 on host ${w.host} (pid ${w.pid}), ${holder.ranks} rank(s), ` +
    `started ${holder.startedAt}`;
}

function busy(path: string, holder: RunLockHolder | null, unsure: boolean): RunInProgressError {
  const w = holder === null ? null : parseToken(holder.writer);
  const who = holder === null
    ? "another run (it has not written its name yet)"
    : describeHolder(holder);
  const stop = w === null
    ? ""
    : w.job === "none"
    ? ` or stop it (kill ${w.pid} on ${w.host})`
    : ` or stop it (scancel ${w.job})`;
  const gone = unsure ? `; if it is gone (its node died), delete ${path}` : "";
  return new RunInProgressError(
    `another run is working on this tool folder: ${who}; wait for it to end${stop}, then run ` +
      `again (it holds ${path})${gone}`,
    holder,
  );
}

async function readHolder(path: string): Promise<RunLockHolder | null> {
  try {
    const value = JSON.parse(await Deno.readTextFile(path));
    return typeof value?.writer === "string" ? value as RunLockHolder : null;
  } catch {
    return null; // empty or gone: no holder, or one that died before it wrote its name
  }
}

/**
 * Whether the holder named in the lock file may still be running, when this process holds
 * the `flock` (`locked`) or could not take one.
 */
async function holderMayBeAlive(
  holder: WriterToken,
  self: WriterToken,
  locked: boolean,
): Promise<boolean> {
  if (!locked) return await writerMayBeAlive(holder, self);
  const host = parseToken(formatToken(self))!.host;
  // The flock is ours: a holder on this node, or outside Slurm, released it by dying.
  if (holder.host === host || holder.job === "none" || holder.job === self.job) return false;
  return await writerMayBeAlive(holder, self);
}

/** The run lock, held until {@linkcode RunLock.release}. */
export class RunLock {
  readonly #file: Deno.FsFile;
  /** True when the lock is an `flock` too (false where the file system has none). */
  readonly flock: boolean;

  /** Wraps the open lock file, locked with `flock` when `flock` is true. */
  constructor(file: Deno.FsFile, flock: boolean) {
    this.#file = file;
    this.flock = flock;
  }

  /** Empties the file (no holder) and releases the lock. */
  async release(): Promise<void> {
    try {
      await this.#file.truncate(0);
      await this.#file.syncData();
    } catch {
      // The file still names this process, which is about to end: the next run finds the
      // holder gone, so a lock file that cannot be emptied now is no reason to fail the run.
    } finally {
      this.#file.close();
    }
  }
}

/**
 * Takes the run lock at `path` for a run of `ranks` ranks whose rank 0 is `self`. Throws
 * {@linkcode RunInProgressError} when another run holds it or may still be running.
 */
export async function acquireRunLock(
  path: string,
  self: WriterToken,
  ranks: number,
): Promise<RunLock> {
  const file = await Deno.open(path, { read: true, write: true, create: true });
  try {
    let flock: boolean;
    try {
      if (!(await file.tryLock(true))) throw busy(path, await readHolder(path), false);
      flock = true;
    } catch (err) {
      if (err instanceof RunInProgressError) throw err;
      flock = false; // the file system has no flock: the holder's name decides
    }
    const holder = await readHolder(path);
    const writer = holder === null ? null : parseToken(holder.writer);
    if (
      holder !== null && holder.writer !== formatToken(self) &&
      (writer === null ? !flock : await holderMayBeAlive(writer, self, flock))
    ) {
      throw busy(path, holder, !flock);
    }
    const mine: RunLockHolder = {
      writer: formatToken(self),
      ranks,
      startedAt: new Date().toISOString(),
    };
    await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    await writeAll(file, new TextEncoder().encode(JSON.stringify(mine) + "\n"));
    await file.syncData();
    return new RunLock(file, flock);
  } catch (err) {
    file.close();
    throw err;
  }
}
