/**
 * Planning of byte gathers: MPI counts and displacements are C `int`s, so a gather whose total
 * exceeds 2 GiB - 1 runs as several `MPI_Gatherv` rounds. Every rank computes the same plan from
 * the gathered lengths, so all ranks take part in the same number of rounds.
 * @module
 */

/** The largest count or displacement MPI accepts (`INT_MAX`). */
export const MAX_MPI_COUNT = 2 ** 31 - 1;

/** One `MPI_Gatherv` round. */
export interface GatherRound {
  /** Bytes each rank sends in this round. */
  readonly counts: Int32Array<ArrayBuffer>;
  /** Where each rank's bytes land in the root's receive buffer of this round. */
  readonly displs: Int32Array<ArrayBuffer>;
  /** Offset in each rank's payload of the first byte it sends in this round. */
  readonly offsets: readonly number[];
  /** Sum of `counts`. */
  readonly total: number;
}

/**
 * Splits the gather of payloads of `lengths` bytes into rounds of at most `maxBytes` bytes in
 * total, filling each round with ranks in order. Returns no round when every payload is empty.
 */
export function planGather(lengths: readonly number[], maxBytes = MAX_MPI_COUNT): GatherRound[] {
  if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_MPI_COUNT) {
    throw new RangeError(`maxBytes must be an integer in [1, ${MAX_MPI_COUNT}], got ${maxBytes}`);
  }
  const sent = lengths.map(() => 0);
  const rounds: GatherRound[] = [];
  let remaining = lengths.reduce((sum, length) => sum + length, 0);
  while (remaining > 0) {
    const counts = new Int32Array(lengths.length);
    const displs = new Int32Array(lengths.length);
    const offsets = [...sent];
    let total = 0;
    for (let rank = 0; rank < lengths.length; rank++) {
      const count = Math.min(lengths[rank] - sent[rank], maxBytes - total);
      counts[rank] = count;
      displs[rank] = total;
      sent[rank] += count;
      total += count;
    }
    remaining -= total;
    rounds.push({ counts, displs, offsets, total });
  }
  return rounds;
}
