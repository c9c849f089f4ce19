/**
 * Running a command in the tests: captured output, optional standard input, and a time limit
 * after which the command is killed, so that a hang shows up as a failure.
 * @module
 */

/** Options of {@linkcode runCommand}. */
export interface CommandOptions {
  /** Environment (added to the inherited one unless `clearEnv`). */
  env?: Record<string, string>;
  /** Start from an empty environment. */
  clearEnv?: boolean;
  /** Working folder. */
  cwd?: string;
  /** Text for standard input (none when absent). */
  stdin?: string;
  /** Kill the command with SIGKILL after this many ms (default 120 s). */
  timeoutMs?: number;
}

/** What a command did. */
export interface CommandResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
  /** True when the time limit killed it. */
  timedOut: boolean;
}

/** Runs `cmd args`; never throws for a non-zero exit or a time-out (see `timedOut`). */
export async function runCommand(
  cmd: string,
  args: string[],
  options: CommandOptions = {},
): Promise<CommandResult> {
  const child = new Deno.Command(cmd, {
    args,
    env: options.env,
    clearEnv: options.clearEnv,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, options.timeoutMs ?? 120_000);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Like {@linkcode runCommand}, but a time-out is an error naming the command. */
export async function runCommandOrFail(
  cmd: string,
  args: string[],
  options: CommandOptions = {},
): Promise<CommandResult> {
  const r = await runCommand(cmd, args, options);
  if (r.timedOut) {
    throw new Error(
      `${cmd} ${args.join(" ")} did not end within ${
        options.timeoutMs ?? 120_000
      } ms:\n${r.stderr}`,
    );
  }
  return r;
}
