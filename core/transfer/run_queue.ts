/**
 * Where a rank's workers take their files from in a run: the {@linkcode WorkQueue} shared by
 * all ranks (balancing at run time: a rank whose list is done takes the files other ranks have
 * not started), or, when stealing is off or MPI cannot make the one-sided window it needs, the
 * rank's own list alone. Either way a file is handed out once and a file handed out is
 * started.
 * @module
 */

import { type Comm, MpiError } from "../../mpi/mod.ts";
import type { ScheduleRow } from "../plan/plan_table.ts";
import { type Taken, WorkQueue } from "./work_queue.ts";

/** The files of one rank's run, handed out one `take()` at a time. */
export interface RunQueue {
  /** Why this run does not balance at run time, or `null` when it does. */
  readonly stealingOff: string | null;
  /** The next file for this rank, or `null` when no file is left unstarted for it. */
  take(): Promise<Taken<ScheduleRow> | null>;
  /**
   * Files of this rank's own list that no rank started. Exact once every rank has stopped
   * taking (after a barrier).
   */
  left(): Promise<number>;
  /** Releases the queue; collective when stealing (call it after a barrier on every rank). */
  free(): void;
}

/** Why stealing is off when the configuration says so. */
export const STEAL_OFF_BY_CONFIG = "data_transfer.steal is false";

/** The rank's own list, in order, and nothing else. */
function ownList(rank: number, list: readonly ScheduleRow[], why: string): RunQueue {
  let next = 0;
  return {
    stealingOff: why,
    take: () =>
      Promise.resolve(next < list.length ? { item: list[next], from: rank, index: next++ } : null),
    left: () => Promise.resolve(list.length - next),
    free: () => {},
  };
}

/**
 * Collective: opens the run's queue over `lists` (every rank's list, identical on every rank;
 * see `planRank`). With `steal`, the shared {@linkcode WorkQueue}; if MPI refuses its window on
 * any rank, every rank goes on with its own list and `stealingOff` says why and what to set.
 *
 * @throws {WorkListMismatchError} when the ranks built different lists.
 */
export function openRunQueue(
  comm: Comm,
  lists: readonly (readonly ScheduleRow[])[],
  steal: boolean,
): RunQueue {
  const mine = lists[comm.rank];
  if (!steal) return ownList(comm.rank, mine, STEAL_OFF_BY_CONFIG);
  let queue: WorkQueue<ScheduleRow> | null = null;
  let refused: MpiError | null = null;
  try {
    queue = WorkQueue.open(comm, lists, {
      sizeOf: (row) => row.sizeBytes,
      keyOf: (row) => row.dstPath,
    });
  } catch (error) {
    if (!(error instanceof MpiError)) throw error;
    refused = error;
  }
  if (comm.allreduce(refused === null ? 0 : 1, "max") > 0) {
    // A rank that did get a window cannot free it alone (collective): it is left to MPI.
    const why = `MPI could not make the one-sided window the shared queue needs` +
      `${refused === null ? " on another rank" : ` (${refused.message})`}; each rank copies ` +
      "its own share only. Under Open MPI between nodes over TCP, export OMPI_MCA_osc=pt2pt " +
      "(slurm/site.sh) to balance at run time";
    return ownList(comm.rank, mine, why);
  }
  const shared = queue!;
  return {
    stealingOff: null,
    take: () => shared.take(),
    left: () => shared.left(),
    free: () => shared.free(),
  };
}
