/**
 * One rank's side of the progress: counts files and bytes as they are copied, including the
 * bytes of files still in flight, and rewrites the rank's snapshot file every
 * {@linkcode SNAPSHOT_INTERVAL_MS} while something changed.
 * @module
 */

import { errorMessage } from "../errors.ts";
import { type RankProgress, SNAPSHOT_INTERVAL_MS, SnapshotFile } from "./progress.ts";

/** A file in flight, as {@linkcode ProgressRecorder.begin} returns it. */
export interface FileInFlight {
  /** Counts `bytes` more of the file as copied. */
  add(bytes: number): void;
  /** The file is finished: it counts as done (with its size), and as failed when it failed. */
  end(failed: boolean): void;
}

/** Counts a rank's progress and writes its snapshot in the tool's `logs/` folder. */
export class ProgressRecorder {
  readonly #logs: string;
  readonly #done: RankProgress;
  readonly #inFlight = new Set<{ size: number; bytes: number }>();
  readonly #log: (line: string) => void;
  #file: SnapshotFile | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #writing: Promise<void> | null = null;
  #changed = true;
  #failedToWrite = false;

  /**
   * Starts counting for `rank` from `startedMs`, in a run of `filesTotal` files of `bytesTotal`
   * bytes over all ranks; `log` receives a line if a snapshot cannot be written.
   */
  constructor(
    logs: string,
    start: Pick<RankProgress, "rank" | "filesTotal" | "bytesTotal" | "startedMs">,
    log: (line: string) => void,
  ) {
    this.#logs = logs;
    this.#done = { ...start, filesDone: 0, bytesDone: 0, failed: 0 };
    this.#log = log;
  }

  /** The rank's progress now. */
  snapshot(): RankProgress {
    let inFlight = 0;
    for (const f of this.#inFlight) inFlight += Math.min(f.bytes, f.size);
    return { ...this.#done, bytesDone: this.#done.bytesDone + inFlight };
  }

  /**
   * Opens the rank's snapshot file and writes the first snapshot, then one every `intervalMs`
   * while something changed.
   */
  async start(intervalMs: number = SNAPSHOT_INTERVAL_MS): Promise<void> {
    this.#file = await SnapshotFile.open(this.#logs, this.#done.rank);
    await this.#write();
    this.#timer = setInterval(() => {
      if (this.#changed && this.#writing === null) {
        this.#writing = this.#write().finally(() => this.#writing = null);
      }
    }, intervalMs);
  }

  /** Starts counting a file of `size` bytes. */
  begin(size: number): FileInFlight {
    const file = { size, bytes: 0 };
    this.#inFlight.add(file);
    return {
      add: (bytes) => {
        file.bytes += bytes;
        this.#changed = true;
      },
      end: (failed) => {
        this.#inFlight.delete(file);
        this.#done.filesDone++;
        this.#done.bytesDone += size;
        if (failed) this.#done.failed++;
        this.#changed = true;
      },
    };
  }

  /** Stops the timer, writes the last snapshot and closes the file. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#writing;
    await this.#write();
    this.#file?.close();
  }

  async #write(): Promise<void> {
    this.#changed = false;
    try {
      await this.#file!.write(this.snapshot());
    } catch (err) {
      // Progress is for people watching; the transfer goes on without it.
      if (!this.#failedToWrite) {
        this.#log(`cannot write the progress snapshot: ${errorMessage(err)}`);
      }
      this.#failedToWrite = true;
    }
  }
}
