/**
 * Reading typed keys out of a parsed YAML document: every bad key becomes one line naming the
 * file, the key and what is expected, and reading goes on, so that a config's problems are all
 * reported at once. The reader also remembers which keys were read, which tells the keys of a
 * section that nobody reads (typos) from those that are settings.
 * @module
 */

/** A mapping of a YAML document. */
export type YamlMapping = Record<string, unknown>;

/** Whether `v` is a YAML mapping (not a list, not a scalar). */
export function isMapping(v: unknown): v is YamlMapping {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Reads dotted keys from a parsed YAML document, collecting one line per problem. */
export class KeyReader {
  /** The problems found so far, one line each. */
  readonly problems: string[] = [];
  #read = new Set<string>();
  #retired = new Set<string>();

  /** Reads keys of `doc`; `path` (the config file) starts every problem line. */
  constructor(readonly path: string, readonly doc: YamlMapping) {}

  /** The value at a dotted key, or undefined when a part of the way is missing. */
  get(key: string): unknown {
    this.#read.add(key);
    let node: unknown = this.doc;
    for (const part of key.split(".")) {
      if (!isMapping(node)) return undefined;
      node = node[part];
    }
    return node;
  }

  /** Records a problem with a key: `<file>: key '<key>': expected <expected>, got <value>`. */
  fail(key: string, expected: string, value: unknown): void {
    const got = value === undefined ? "it is missing" : `got ${JSON.stringify(value)}`;
    this.problems.push(`${this.path}: key '${key}': expected ${expected}, ${got}`);
  }

  /** Records a problem in the reader's own words (the file's path is prepended). */
  report(text: string): void {
    this.problems.push(`${this.path}: ${text}`);
  }

  /** Checks that `key` is absent or a mapping. */
  mapping(key: string): void {
    const v = this.get(key);
    if (v !== undefined && v !== null && !isMapping(v)) this.fail(key, "a mapping of settings", v);
  }

  /** A required non-empty string (`""` after a problem). */
  string(key: string): string {
    const v = this.get(key);
    if (typeof v !== "string" || v.trim() === "") {
      this.fail(key, "a non-empty path string", v);
      return "";
    }
    return v;
  }

  /** A whole number in `[min, max]`, or `fallback` when absent (and after a problem). */
  positiveInt(key: string, fallback?: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.get(key);
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min} to ${max}`;
      this.fail(key, `a whole number ${range}`, v);
      return fallback ?? min;
    }
    return v;
  }

  /** A whole number >= 0, or `fallback` when absent. */
  nonNegativeInt(key: string, fallback: number): number {
    return this.positiveInt(key, fallback, 0);
  }

  /** `true` or `false`, or `fallback` when absent. */
  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") {
      this.fail(key, "true or false", v);
      return fallback;
    }
    return v;
  }

  /** One of `options`, or `fallback` when absent. */
  choice(key: string, options: readonly string[], fallback: string): string {
    const v = this.get(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string" || !options.includes(v)) {
      this.fail(key, `one of ${options.join(", ")}`, v);
      return fallback;
    }
    return v;
  }

  /** A byte size (`4096`, `8MiB`) in `[min, max]`, or `fallback` when absent. */
  byteSize(key: string, fallback: number, min: number, max: number, multiple = 1): number {
    const v = this.get(key);
    if (v === undefined || v === null) return fallback;
    const n = typeof v === "number" ? v : parseByteSize(String(v));
    if (n === null || !Number.isInteger(n) || n < min || n > max || n % multiple !== 0) {
      const of = multiple === 1 ? "a size" : `a multiple of ${multiple} bytes`;
      this.fail(key, `${of} from ${min} bytes to 1GiB (bytes, or e.g. 8MiB)`, v);
      return fallback;
    }
    return n;
  }

  /**
   * Accepts a key that earlier versions of the tool read and this one no longer does: it is
   * not refused as unknown, nor offered as a known key. Returns `why` behind the key's name
   * when the file sets it, for a warning, else null.
   */
  retired(key: string, why: string): string | null {
    this.#retired.add(key);
    let node: unknown = this.doc;
    for (const part of key.split(".")) node = isMapping(node) ? node[part] : undefined;
    return node === undefined ? null : `${this.path}: key '${key}' ${why}`;
  }

  /**
   * Reports every key of the mapping at `section` that was never read: a key this tool does
   * not know, named with the nearest key it knows.
   */
  refuseUnread(section: string): void {
    const node = this.get(section);
    if (!isMapping(node)) return;
    const known = [...this.#read]
      .filter((k) => k.startsWith(`${section}.`))
      .map((k) => k.slice(section.length + 1));
    for (const key of Object.keys(node)) {
      if (known.includes(key) || this.#retired.has(`${section}.${key}`)) continue;
      const near = nearestWord(key, known);
      const hint = near === null
        ? `known keys: ${known.join(", ")}`
        : `did you mean '${near}'? (known keys: ${known.join(", ")})`;
      this.report(`key '${section}.${key}' is not a setting of this tool; ${hint}`);
    }
  }
}

/** Parses `8MiB`, `512KiB`, `1GiB`, `4096` into bytes, or returns null. */
export function parseByteSize(text: string): number | null {
  const m = /^\s*(\d+)\s*(B|KiB|MiB|GiB|K|M|G)?\s*$/i.exec(text);
  if (!m) return null;
  const unit = (m[2] ?? "B").toUpperCase().replace("IB", "");
  const mult: Record<string, number> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };
  return Number(m[1]) * mult[unit];
}

/** Levenshtein distance between two strings (insertions, deletions, substitutions). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost));
    }
    prev = row;
  }
  return prev[b.length];
}

/**
 * The word of `words` nearest to `word` by edit distance (case ignored), or null when even
 * the nearest differs in more than half of its letters (then it is not a typo of any).
 */
function nearestWord(word: string, words: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const w of words) {
    const d = editDistance(word.toLowerCase(), w.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [w, d];
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(best.length / 2)) ? best : null;
}
