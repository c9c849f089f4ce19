/**
 * The Deno cache folder (`DENO_DIR`) of the running Deno. Imports no npm package, so that it can
 * name the folder even when the cache is empty.
 * @module
 */

/**
 * The folder where this Deno caches modules and npm packages: `$DENO_DIR` when set, else Deno's
 * default, as `deno info` reports it (so the answer is Deno's own, not a guess of its rules).
 * Falls back to `$DENO_DIR`, or a description of the default, when `deno info` cannot run.
 */
export async function denoDir(): Promise<string> {
  const fallback = Deno.env.get("DENO_DIR") ?? "Deno's default cache folder";
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--no-config"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return fallback;
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir?: unknown };
    return typeof info.denoDir === "string" ? info.denoDir : fallback;
  } catch {
    return fallback;
  }
}
