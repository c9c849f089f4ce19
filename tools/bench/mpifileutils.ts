/**
 * mpiFileUtils, the peer an HPC site would use instead of this tool: where its `dcp` and
 * `dcmp` are, and whether a `dcmp` found the copy identical.
 * @module
 */

import { join } from "node:path";

/** The programs of mpiFileUtils the benchmark runs. */
export interface MpiFileUtils {
  /** Parallel copy (fsyncs each file, no checksum). */
  dcp: string;
  /** Parallel byte-for-byte comparison of two trees. */
  dcmp: string;
}

/** Where mpiFileUtils is looked for when it is not on PATH. */
const DEFAULT_MFU_PREFIX = "/opt/mfu";

/** The script that builds mpiFileUtils, relative to the repository (never part of it). */
export const MFU_BUILD_SCRIPT = "../shared/peers/build-mpifileutils.sh";

/** Options of {@linkcode findMpiFileUtils}. */
export interface FindOptions {
  /** Look only in `<prefix>/bin` (default: PATH, then `/opt/mfu/bin`). */
  prefix?: string;
  /** The PATH to search (default `$PATH`). */
  path?: string;
}

async function isExecutable(path: string): Promise<boolean> {
  const info = await Deno.stat(path).catch(() => null);
  return info !== null && info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
}

/**
 * Finds `dcp` and `dcmp` in one folder: PATH's folders in order, then `/opt/mfu/bin` (or only
 * `<prefix>/bin`). Returns them, or the plain sentence saying they are missing and how to
 * build them.
 */
export async function findMpiFileUtils(
  options: FindOptions = {},
): Promise<MpiFileUtils | { missing: string }> {
  const folders = options.prefix !== undefined ? [join(options.prefix, "bin")] : [
    ...(options.path ?? Deno.env.get("PATH") ?? "").split(":").filter(Boolean),
    join(DEFAULT_MFU_PREFIX, "bin"),
  ];
  for (const folder of folders) {
    const dcp = join(folder, "dcp");
    const dcmp = join(folder, "dcmp");
    if (await isExecutable(dcp) && await isExecutable(dcmp)) return { dcp, dcmp };
  }
  const where = options.prefix !== undefined
    ? `in ${join(options.prefix, "bin")}`
    : `on PATH or in ${join(DEFAULT_MFU_PREFIX, "bin")}`;
  return {
    missing: `mpiFileUtils not found (dcp and dcmp are not ${where}); build it into ` +
      `${DEFAULT_MFU_PREFIX} with \`bash ${MFU_BUILD_SCRIPT}\` (about 1-3 minutes)`,
  };
}

/** The counts a `dcmp` summary ends with. */
export interface DcmpCounts {
  /** Items in only one of the two trees. */
  onlyInOne: number;
  /** Items in both with different types. */
  differentTypes: number;
  /** Items in both with different contents. */
  differentContents: number;
  /** Items in both with the same content (files and folders). */
  sameContent: number;
}

/** Reads the counts of a `dcmp` summary; throws when a line is missing. */
function parseDcmp(output: string): DcmpCounts {
  const count = (what: string): number => {
    const m = new RegExp(`exist[a-z ]* ${what}: (\\d+)`).exec(output);
    if (m === null) {
      throw new Error(`bench: dcmp printed no "${what}" count:\n${output.slice(-800)}`);
    }
    return Number(m[1]);
  };
  return {
    onlyInOne: count("only in one directory"),
    differentTypes: count("have different types"),
    differentContents: count("have different contents"),
    sameContent: count("have the same content"),
  };
}

/**
 * Why a `dcmp` of a copy of `files` regular files shows the copy is not identical, or null
 * when it found 0 differences and at least `files` identical items.
 */
export function dcmpDifference(output: string, files: number): string | null {
  const c = parseDcmp(output);
  if (c.onlyInOne > 0 || c.differentTypes > 0 || c.differentContents > 0) {
    return `dcmp found differences: ${c.onlyInOne} only in one tree, ${c.differentTypes} of ` +
      `different types, ${c.differentContents} of different contents`;
  }
  if (c.sameContent < files) {
    return `dcmp found only ${c.sameContent} identical items for ${files} files`;
  }
  return null;
}
