/**
 * Recognising Deno's "this dependency is not cached and cannot be downloaded" failure, and the
 * one line an entry point prints for it. Imports no npm package.
 * @module
 */

import { ExitCode } from "../exit_codes.ts";
import { type Env, launcherRank } from "../../mpi/locate.ts";
import { denoDir } from "./deno_dir.ts";

/** What Deno could not load, and why it could not fetch it. */
export interface MissingDependency {
  /** The dependency, such as `npm package js-yaml@5.5.0`. */
  readonly what: string;
  /** Deno's innermost reason, such as `--cached-only is specified` or a DNS error. */
  readonly cause: string;
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * The dependency Deno failed to load, when `error` (a failed `import()`, or the error output of
 * a `deno` command) is Deno's failure to cache an npm package: not in `DENO_DIR`, and the
 * registry unreachable or `--cached-only` given. `null` for any other error, which is then not
 * this module's to explain. Deno throws a plain `TypeError` for it (no class of its own), so
 * its text is the only mark there is.
 */
export function missingDependency(error: unknown): MissingDependency | null {
  const raw = error instanceof Error ? error.message : typeof error === "string" ? error : "";
  const text = raw.replace(ANSI, "");
  const npm = /Failed caching npm package '([^']+)'/.exec(text);
  if (npm === null) return null;
  const reasons = [...text.matchAll(/^\s*\d+: (.+)$/gm)].map((m) => m[1].trim());
  const cause = (reasons.at(-1) ?? "no reason given").replace(/\.$/, "");
  return { what: `npm package ${npm[1]}`, cause };
}

/**
 * The one line that tells the user of entry point `name` what is missing, which cache folder
 * was searched, and what to do.
 */
export function formatMissingDependency(
  name: string,
  missing: MissingDependency,
  denoDir: string,
): string {
  return `${name}: ${missing.what} is not in the Deno cache (DENO_DIR ${denoDir}) and cannot be ` +
    `downloaded (${missing.cause}); run \`deno task setup\` on a node with network access`;
}

/**
 * When `error` is a missing dependency of entry point `name`, prints its one line on stderr —
 * only on the process a launcher numbers 0 (or when there is no launcher), so that an MPI job
 * says it once — and exits 2, on every rank. Returns when `error` is anything else.
 */
export async function exitIfMissingDependency(
  name: string,
  error: unknown,
  env: Env,
): Promise<void> {
  const missing = missingDependency(error);
  if (missing === null) return;
  const rank = launcherRank(env);
  if (rank === null || rank === 0) {
    console.error(`error: ${formatMissingDependency(name, missing, await denoDir())}`);
  }
  Deno.exit(ExitCode.Usage);
}

/** Deno's error output on one line: without colours, download notes or backtrace lines. */
export function denoErrorLine(stderr: string): string {
  const lines = stderr.replace(ANSI, "").split("\n").map((line) => line.trim());
  return lines.filter((line) =>
    line !== "" && !/^(Download|Stack backtrace|\d+: <unknown>)/.test(line)
  )
    .join(" ") || "no message";
}
