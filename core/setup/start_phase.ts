/**
 * Starting a phase so that missing dependencies give one line instead of Deno's error dump.
 *
 * Deno loads every static import of the main module before any of its code runs, so an entry
 * point that imports an npm package cannot report a cold cache itself. {@linkcode startPhase}
 * runs in an entry point that imports no npm package (`phases/start.ts`) and loads the phase with
 * a dynamic `import()`, whose failure it can catch. It imports nothing more on the way to a
 * phase that loads, since every rank of every job pays for each module at start-up.
 * @module
 */

import { ExitCode } from "../exit_codes.ts";

/** A phase's module as {@linkcode startPhase} needs it. */
export interface PhaseModule {
  /** Runs the phase on `args` and exits the process with its code. */
  start(args: string[]): Promise<never>;
}

/** Loads a phase's module; each is imported only when it is started. */
export type PhaseLoader = () => Promise<PhaseModule>;

/** Options of {@linkcode startPhase}. */
export interface StartPhaseOptions {
  /** Environment that shows the launcher's rank (default: the process environment). */
  env?: Record<string, string>;
}

/**
 * Starts the phase `name` of `phases` with `args`. When its module cannot be loaded because a
 * dependency is neither cached nor downloadable, prints one line naming it, the `DENO_DIR`
 * and `deno task setup` — only on the process a launcher numbers 0 (or when there is no
 * launcher), so an MPI job says it once — and exits 2 on every rank. Any other failure to load
 * is a bug and propagates with its stack. An unknown `name` prints the phases and exits 2.
 */
export async function startPhase(
  name: string,
  phases: Readonly<Record<string, PhaseLoader>>,
  args: string[],
  options: StartPhaseOptions = {},
): Promise<never> {
  const load = Object.hasOwn(phases, name) ? phases[name] : undefined;
  if (load === undefined) {
    console.error(
      `error: unknown phase "${name}"; usage: deno run -A phases/start.ts ` +
        `<${Object.keys(phases).join("|")}> [options]`,
    );
    Deno.exit(ExitCode.Usage);
  }
  let phase: PhaseModule;
  try {
    phase = await load();
  } catch (error) {
    const { exitIfMissingDependency } = await import("./missing_dependency.ts");
    await exitIfMissingDependency(name, error, options.env ?? Deno.env.toObject());
    throw error;
  }
  return await phase.start(args);
}
