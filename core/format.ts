/**
 * Numbers for people, in one place: byte counts (`1.5 GiB`) and durations (`1h02m03s`) as every
 * summary, progress line and report prints them.
 * @module
 */

/** Formats a byte count for people: `1.5 GiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** Formats seconds as `1h02m03s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  if (seconds < 10) return `${Math.max(0, seconds).toFixed(1)}s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0
    ? `${h}h${String(m).padStart(2, "0")}m${String(r).padStart(2, "0")}s`
    : m > 0
    ? `${m}m${String(r).padStart(2, "0")}s`
    : `${r}s`;
}
