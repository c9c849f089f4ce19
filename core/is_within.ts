/**
 * The one rule of path containment, used for the config's folders, the schedule's paths and
 * resolved symlinks alike.
 * @module
 */

import { normalize } from "node:path";

/**
 * True when `path` is `root` itself or lies below it. Both are absolute paths; a path with
 * `.`, `..` or empty parts is never within anything, so that a name cannot climb out of its
 * folder by its spelling.
 */
export function isWithin(root: string, path: string): boolean {
  if (normalize(path) !== path) return false;
  const base = root.endsWith("/") ? root.slice(0, -1) : root;
  return path === base || path.startsWith(base + "/");
}
