/**
 * `deno task setup`: fills the Deno cache with everything the phases need, proves that each phase
 * starts from that cache alone, checks that an MPI library loads, and says which `DENO_DIR` the
 * compute nodes must share. Run it where the npm registry is reachable; running it again only
 * checks again.
 * @module
 */

import { join } from "node:path";
import { UserError } from "../errors.ts";
import { shellQuote } from "../shell_quote.ts";
import {
  KNOWN_LIBRARIES,
  LIBRARY_ENV,
  type LoadedLibrary,
  type LoadFailure,
  probeLibraries,
} from "../../mpi/mod.ts";
import { denoDir } from "./deno_dir.ts";
import { denoErrorLine, formatMissingDependency, missingDependency } from "./missing_dependency.ts";

/** Setup could not finish: what failed and what to do, in one line. */
export class SetupError extends UserError {}

/**
 * The Deno flags every phase runs with: the packages pinned by the repository's `deno.lock`,
 * which is never rewritten (`--frozen`).
 */
export function lockFlags(home: string): string[] {
  return [`--lock=${join(home, "deno.lock")}`, "--frozen"];
}

/** Options of {@linkcode runSetup}. */
export interface SetupOptions {
  /** Root of the repository: holds `deno.json`, `deno.lock` and `phases/start.ts`. */
  home: string;
  /** The phases to start from the cache (`phases/start.ts <phase> --help`). */
  phases: readonly string[];
  /** Receives one line per step done. */
  log: (line: string) => void;
  /** Environment to read `DT_MPI_LIBRARY` from (default: the process environment). */
  env?: Record<string, string>;
}

/** What {@linkcode runSetup} found. */
export interface SetupReport {
  /** The Deno cache folder filled. */
  denoDir: string;
  /** The npm packages of the phases' module graph, as `name@version`. */
  packages: string[];
  /** The MPI libraries that load. */
  mpi: LoadedLibrary[];
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function deno(home: string, args: string[]): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: home,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function cacheDependencies(home: string, entry: string, dir: string): Promise<string[]> {
  const cached = await deno(home, ["cache", ...lockFlags(home), entry]);
  if (cached.code !== 0) {
    const missing = missingDependency(cached.stderr);
    throw new SetupError(
      missing === null
        ? `setup: deno cache ${entry} failed: ${denoErrorLine(cached.stderr)}`
        : formatMissingDependency("setup", missing, dir),
    );
  }
  const info = await deno(home, ["info", "--json", ...lockFlags(home), entry]);
  if (info.code !== 0) {
    throw new SetupError(`setup: deno info ${entry} failed: ${denoErrorLine(info.stderr)}`);
  }
  const graph = JSON.parse(info.stdout) as { npmPackages?: Record<string, unknown> };
  return Object.keys(graph.npmPackages ?? {}).sort();
}

async function startFromCache(home: string, entry: string, phase: string): Promise<void> {
  const args = ["run", "--cached-only", ...lockFlags(home), "-A", entry, phase, "--help"];
  const started = await deno(home, args);
  if (started.code !== 0) {
    throw new SetupError(
      `setup: phase ${phase} does not start from the cache (deno ${args.join(" ")} exits ` +
        `${started.code}): ${denoErrorLine(started.stderr)}`,
    );
  }
}

function checkMpi(env: Record<string, string>): LoadedLibrary[] {
  const explicit = env[LIBRARY_ENV] || undefined;
  const probed = probeLibraries(explicit === undefined ? KNOWN_LIBRARIES : [explicit]);
  const loaded = probed.filter((p): p is LoadedLibrary => !("reason" in p));
  if (loaded.length > 0) return loaded;
  const reasons = (probed as LoadFailure[]).map((f) => f.reason).join("; ");
  throw new SetupError(
    explicit === undefined
      ? `setup: no MPI library loads (${reasons}); load your MPI first (the module that ` +
        `dt_site_setup in slurm/site.sh loads), or set ${LIBRARY_ENV} to its libmpi`
      : `setup: ${LIBRARY_ENV}=${explicit} does not load as MPI (${reasons}); fix or unset it`,
  );
}

/**
 * Caches the module graph of `phases/start.ts` (every phase and its npm packages, pinned by
 * `deno.lock`, nothing only the tests use) into the Deno cache, starts each phase of
 * `options.phases` with `--help` and `--cached-only` (as the Slurm jobs start them, which also
 * fills the compile cache), loads the MPI libraries, and logs the lines for `slurm/site.sh`.
 *
 * @throws {SetupError} when caching fails (registry unreachable, `deno.lock` out of date), a
 * phase does not start from the cache, or no MPI library loads.
 */
export async function runSetup(options: SetupOptions): Promise<SetupReport> {
  const { home, log } = options;
  const entry = join(home, "phases", "start.ts");
  const dir = await denoDir();
  const packages = await cacheDependencies(home, entry, dir);
  log(`setup: ${packages.length} npm packages of the phases are in ${dir}: ${packages.join(", ")}`);
  for (const phase of options.phases) await startFromCache(home, entry, phase);
  log(`setup: ${options.phases.join(", ")} start from the cache alone (--cached-only)`);
  const mpi = checkMpi(options.env ?? Deno.env.toObject());
  for (const m of mpi) {
    log(`setup: MPI library ${m.library} loads: ${m.implementation}, ${m.version}`);
  }
  log(
    "setup: done. The compute nodes must see this cache: put these lines in slurm/site.sh (or " +
      "the copy DT_SITE names), with DENO_DIR on a file system they mount",
  );
  log(`export DENO_DIR=${shellQuote(dir)}`);
  log(`DT_DENO=${shellQuote(Deno.execPath())}`);
  return { denoDir: dir, packages, mpi };
}
