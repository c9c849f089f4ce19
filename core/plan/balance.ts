/**
 * Assignment of files to ranks by bytes: largest file first onto the least-loaded rank, then
 * moves and swaps between the heaviest and the lightest rank while they lower the maximum.
 * Deterministic: ties are broken by position, never by chance.
 * @module
 */

/**
 * Returns, for each size in `sizes`, the rank (0..world-1) it is assigned to. `sizes` must be
 * in a deterministic order (the caller sorts them); the result depends only on that order.
 */
export function assignRanks(sizes: readonly number[], world: number): number[] {
  if (!Number.isInteger(world) || world < 1) throw new RangeError(`world size ${world} < 1`);
  const order = sizes.map((_, i) => i).sort((a, b) => sizes[b] - sizes[a] || a - b);
  const ranks = new Array<number>(sizes.length);
  const load = new Array<number>(world).fill(0);
  const heap = new MinLoadHeap(load);
  for (const i of order) {
    const r = heap.popMin();
    ranks[i] = r;
    load[r] += sizes[i];
    heap.push(r);
  }
  refine(sizes, ranks, load);
  return ranks;
}

/** Loads per rank of an assignment. */
export function rankLoads(
  sizes: readonly number[],
  ranks: readonly number[],
  world: number,
): number[] {
  const load = new Array<number>(world).fill(0);
  ranks.forEach((r, i) => load[r] += sizes[i]);
  return load;
}

function argMax(load: number[]): number {
  let m = 0;
  for (let r = 1; r < load.length; r++) if (load[r] > load[m]) m = r;
  return m;
}

function argMin(load: number[]): number {
  let m = 0;
  for (let r = 1; r < load.length; r++) if (load[r] < load[m]) m = r;
  return m;
}

function refine(sizes: readonly number[], ranks: number[], load: number[]): void {
  if (load.length < 2) return;
  const members: number[][] = load.map(() => []);
  ranks.forEach((r, i) => members[r].push(i));
  for (let step = 0; step < 4 * load.length + 64; step++) {
    const hi = argMax(load);
    const lo = argMin(load);
    const diff = load[hi] - load[lo];
    if (diff <= 0) return;
    // Best move: an item of hi whose size is closest to diff / 2 and below diff.
    let best = -1;
    let bestGap = Infinity;
    let bestSwap = -1;
    for (const i of members[hi]) {
      const s = sizes[i];
      if (s > 0 && s < diff && Math.abs(diff / 2 - s) < bestGap) {
        bestGap = Math.abs(diff / 2 - s);
        best = i;
      }
    }
    // Best swap: items a of hi and b of lo with 0 < a - b < diff, a - b closest to diff / 2.
    const lows = members[lo].slice().sort((a, b) => sizes[a] - sizes[b] || a - b);
    for (const a of members[hi]) {
      const target = sizes[a] - diff / 2;
      let l = 0;
      let h = lows.length;
      while (l < h) {
        const m = (l + h) >> 1;
        if (sizes[lows[m]] < target) l = m + 1;
        else h = m;
      }
      for (const k of [l - 1, l]) {
        if (k < 0 || k >= lows.length) continue;
        const b = lows[k];
        const d = sizes[a] - sizes[b];
        if (d > 0 && d < diff && Math.abs(diff / 2 - d) < bestGap) {
          bestGap = Math.abs(diff / 2 - d);
          best = a;
          bestSwap = b;
        }
      }
    }
    if (best < 0) return;
    const moveOut = (i: number, from: number, to: number) => {
      members[from].splice(members[from].indexOf(i), 1);
      members[to].push(i);
      ranks[i] = to;
      load[from] -= sizes[i];
      load[to] += sizes[i];
    };
    moveOut(best, hi, lo);
    if (bestSwap >= 0) moveOut(bestSwap, lo, hi);
  }
}

/** A binary min-heap of ranks keyed by their current load, ties to the lower rank. */
class MinLoadHeap {
  #items: number[] = [];
  constructor(readonly load: number[]) {
    for (let r = 0; r < load.length; r++) this.push(r);
  }
  #less(a: number, b: number): boolean {
    return this.load[a] < this.load[b] || (this.load[a] === this.load[b] && a < b);
  }
  push(r: number): void {
    const h = this.#items;
    h.push(r);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  popMin(): number {
    const h = this.#items;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      while (true) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l], h[m])) m = l;
        if (r < h.length && this.#less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
