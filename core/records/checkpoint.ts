/**
 * The toolbox's phase flags in `tool_checkpoint.yaml`: `filtering_completed`,
 * `scheduling_completed`, `completed`. Unknown keys are kept as they are.
 * @module
 */

import { dump as stringifyYaml, load as parseYaml } from "js-yaml";
import { writeFileAtomic } from "./atomic_file.ts";
import { errorMessage, InputError } from "../errors.ts";

/** Phase flags of the tool. */
export interface Checkpoint {
  /** The filter ran to its end since the last reset. */
  filtering_completed?: boolean;
  /** The schedule was written from the current filter tables. */
  scheduling_completed?: boolean;
  /** The verifier found every scheduled file verified. */
  completed?: boolean;
  /** Any other key, kept untouched. */
  [key: string]: unknown;
}

/** Reads the checkpoint; a missing file is an empty checkpoint. */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    throw err;
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new InputError(`${path}: not valid YAML (${errorMessage(err).split("\n")[0]})`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new InputError(`${path}: expected a mapping of phase flags`);
  }
  return doc as Checkpoint;
}

/** Applies `patch` to the checkpoint and writes it atomically; returns the new checkpoint. */
export async function updateCheckpoint(path: string, patch: Checkpoint): Promise<Checkpoint> {
  const next = { ...(await readCheckpoint(path)), ...patch };
  await writeFileAtomic(path, stringifyYaml(next));
  return next;
}

/**
 * Throws an {@linkcode InputError} naming the first step not done before a phase can run:
 * the filter, then (when `through` is `"schedule"`) the scheduler. `path` is the checkpoint's.
 */
export function requireSteps(
  checkpoint: Checkpoint,
  path: string,
  through: "filter" | "schedule",
): void {
  if (checkpoint.filtering_completed !== true) {
    throw new InputError(`${path}: filtering is not completed; run 'deno task filter' first`);
  }
  if (through === "schedule" && checkpoint.scheduling_completed !== true) {
    throw new InputError(
      `${path}: scheduling is not completed (or the filter ran since); ` +
        `run 'deno task schedule' first`,
    );
  }
}
