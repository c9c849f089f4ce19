/**
 * Moving a damaged published file out of the dataset into the tool's quarantine folder, so
 * that readers of the dataset no longer see it and the next run can copy the source again to
 * the same name. Nothing is ever deleted: the file keeps its bytes under
 * `<tool folder>/quarantine/<path relative to its dataset folder>`, and an earlier quarantined
 * file of the same name is never overwritten (the later one gets `.1`, `.2`, ... before
 * `.parquet`).
 * @module
 */

import { basename, dirname, join, relative } from "node:path";
import { isWithin } from "../is_within.ts";
import { InputError } from "../errors.ts";
import { syncDirectory } from "../io/sync_directory.ts";

/** The `n`-th name for `path` when the plain one is taken: `a.parquet` -> `a.1.parquet`. */
function numberedName(path: string, n: number): string {
  if (n === 0) return path;
  const name = basename(path);
  const dot = name.lastIndexOf(".");
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ""];
  return join(dirname(path), `${stem}.${n}${ext}`);
}

function crossDevice(err: unknown): boolean {
  return (err as { code?: string })?.code === "EXDEV";
}

/**
 * Copies `path` to `target` without ever overwriting it (through a hidden temporary in the
 * target's folder, synced, then linked); false when `target` exists.
 */
async function copyNoOverwrite(path: string, target: string): Promise<boolean> {
  const tmp = join(dirname(target), `.${basename(target)}.${Deno.pid}.quarantine-tmp`);
  try {
    await Deno.copyFile(path, tmp);
    const file = await Deno.open(tmp, { read: true, write: true });
    try {
      await file.syncData();
    } finally {
      file.close();
    }
    const [a, b] = await Promise.all([Deno.stat(path), Deno.stat(tmp)]);
    if (a.size !== b.size) {
      throw new Error(`copy of ${path} to ${tmp} has ${b.size} bytes, not ${a.size}`);
    }
    try {
      await Deno.link(tmp, target);
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return false;
      throw err;
    }
    return true;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

/**
 * Moves `path` (a file under `datasetRoot`) to the quarantine folder `quarantineRoot` and
 * returns where it now is. The file is first linked (or, from another file system, copied
 * and synced) there, then removed from the dataset; both folders are synced.
 */
export async function quarantineFile(
  path: string,
  datasetRoot: string,
  quarantineRoot: string,
): Promise<string> {
  if (!isWithin(datasetRoot, path) || path === datasetRoot) {
    throw new InputError(`${path} is not in the dataset folder ${datasetRoot}: not moved`);
  }
  const target = join(quarantineRoot, relative(datasetRoot, path));
  await Deno.mkdir(dirname(target), { recursive: true });
  for (let n = 0;; n++) {
    const candidate = numberedName(target, n);
    try {
      await Deno.link(path, candidate);
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) continue;
      if (!crossDevice(err)) throw err;
      if (!(await copyNoOverwrite(path, candidate))) continue;
    }
    await syncDirectory(dirname(candidate));
    await Deno.remove(path);
    await syncDirectory(dirname(path));
    return candidate;
  }
}
