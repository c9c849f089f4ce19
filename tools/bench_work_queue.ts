/**
 * Measures the shared work queue and its counters under `mpirun` (figures for the README; no
 * test depends on them). Rank 0 prints one JSON line per measure.
 *
 * ```sh
 * mpirun.mpich -n 2 deno run -A tools/bench_work_queue.ts take
 * mpirun.openmpi --allow-run-as-root -n 2 deno run -A tools/bench_work_queue.ts poke
 * mpirun.mpich -n 8 deno run -A tools/bench_work_queue.ts balance
 * ```
 *
 * - `take`: µs per `take()` of a rank's own items (all ranks at once), and per `take()` that
 *   steals from rank 0 while rank 0 awaits a timer (as when it copies a file), wall and CPU,
 *   per progress interval.
 * - `poke`: CPU time (user + system) per second of a rank that only awaits, per progress
 *   interval (0 = no poke).
 * - `balance`: files of simulated work (a timer per file, proportional to its size), rank 1
 *   ten times slower than the others; wall time and bytes per rank with the queue, and with
 *   each rank on its own list only.
 * @module
 */

import process from "node:process";
import { type Comm, runWorld } from "../mpi/mod.ts";
import { WorkQueue } from "../core/transfer/work_queue.ts";

interface Item {
  key: string;
  size: number;
}

const OPTIONS = { sizeOf: (item: Item) => item.size, keyOf: (item: Item) => item.key };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function items(prefix: string, count: number, size: (i: number) => number): Item[] {
  return Array.from({ length: count }, (_, i) => ({ key: `${prefix}${i}`, size: size(i) }));
}

function print(comm: Comm, line: Record<string, unknown>): void {
  const all = comm.gather(new TextEncoder().encode(JSON.stringify(line)), 0);
  if (all === null) return;
  const lines = all.map((bytes) => JSON.parse(new TextDecoder().decode(bytes)));
  console.log(JSON.stringify({ implementation: comm.implementation, size: comm.size, lines }));
}

async function take(comm: Comm): Promise<void> {
  const own = 3000;
  const lists = Array.from({ length: comm.size }, (_, r) => items(`r${r}-`, own, (i) => own - i));
  const queue = WorkQueue.open(comm, lists, OPTIONS);
  comm.barrier();
  let start = performance.now();
  for (let i = 0; i < own; i++) await queue.take();
  const ownUs = (performance.now() - start) * 1000 / own;
  comm.barrier();
  queue.free();
  for (const progressIntervalMs of [1, 5, 10]) {
    const stolen = 200 * (comm.size - 1);
    const victim = [items("v", stolen, (i) => stolen - i), ...lists.slice(1).map(() => [])];
    const steals = WorkQueue.open(comm, victim, { ...OPTIONS, progressIntervalMs });
    const finished = comm.allocateCounters(1, { progressIntervalMs: 0 });
    comm.barrier();
    let stealUs = 0;
    let stealCpuUs = 0;
    let taken = 0;
    if (comm.rank === 0) {
      // The victim only awaits, as a rank copying a file does; it looks every 50 ms whether
      // the thieves are done (that look enters MPI too, far less often than the poke).
      while ((await finished.read(0, 0)) < comm.size - 1) await sleep(50);
    } else {
      start = performance.now();
      const cpu = process.cpuUsage();
      while ((await steals.take()) !== null) taken++;
      stealUs = (performance.now() - start) * 1000 / Math.max(1, taken);
      const used = process.cpuUsage(cpu);
      stealCpuUs = (used.user + used.system) / Math.max(1, taken);
      await finished.fetchAdd(0, 0, 1);
    }
    comm.barrier();
    finished.free();
    steals.free();
    print(comm, {
      measure: "take",
      progressIntervalMs,
      ownUs,
      stealUs,
      stealCpuUs,
      stolen: taken,
    });
  }
}

async function poke(comm: Comm): Promise<void> {
  const cpuMsPerSecond = async (seconds: number) => {
    const before = process.cpuUsage();
    const wall = performance.now();
    await sleep(seconds * 1000);
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1000 / ((performance.now() - wall) / 1000);
  };
  for (const progressIntervalMs of [0, 1, 5, 10, 20]) {
    const counters = comm.allocateCounters(1, { progressIntervalMs });
    const poked = await cpuMsPerSecond(5);
    comm.barrier();
    counters.free();
    // The same timer without the MPI call: what the poke itself adds.
    const timer = progressIntervalMs > 0 ? setInterval(() => {}, progressIntervalMs) : null;
    const empty = await cpuMsPerSecond(5);
    if (timer !== null) clearInterval(timer);
    comm.barrier();
    print(comm, { measure: "poke", progressIntervalMs, cpuMsPerSecond: poked, emptyTimer: empty });
  }
}

async function balance(comm: Comm): Promise<void> {
  const files = 64;
  // Sizes in MB-equivalents; a fast rank "copies" 1 per ms, rank 1 one per 10 ms.
  const all = items("f", files, (i) => 20 + ((i * 37) % 61));
  const lists: Item[][] = Array.from({ length: comm.size }, () => []);
  all.forEach((item, i) => lists[i % comm.size].push(item));
  for (const list of lists) list.sort((a, b) => b.size - a.size);
  const msPerUnit = comm.rank === 1 ? 10 : 1;
  for (const mode of ["queue", "own list"]) {
    comm.barrier();
    const start = performance.now();
    let bytes = 0;
    let fromOthers = 0;
    if (mode === "queue") {
      const queue = WorkQueue.open(comm, lists, OPTIONS);
      for (let taken = await queue.take(); taken !== null; taken = await queue.take()) {
        await sleep(taken.item.size * msPerUnit);
        bytes += taken.item.size;
        if (taken.from !== comm.rank) fromOthers++;
      }
      const end = performance.now();
      // Wait for the others without spinning before the collective free.
      const finished = comm.allreduce(end, "max");
      print(comm, { measure: "balance", mode, bytes, fromOthers, wallMs: finished - start });
      queue.free();
    } else {
      for (const item of lists[comm.rank]) {
        await sleep(item.size * msPerUnit);
        bytes += item.size;
      }
      const finished = comm.allreduce(performance.now(), "max");
      print(comm, { measure: "balance", mode, bytes, fromOthers, wallMs: finished - start });
    }
  }
}

if (import.meta.main) {
  const measures: Record<string, (comm: Comm) => Promise<void>> = { take, poke, balance };
  const measure = measures[Deno.args[0] ?? ""];
  if (measure === undefined) {
    console.error("usage: mpirun -n N deno run -A tools/bench_work_queue.ts take|poke|balance");
    Deno.exit(2);
  }
  await runWorld(async (comm) => {
    await measure(comm);
    return 0;
  });
}
