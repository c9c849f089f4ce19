/**
 * Worker thread of `statSizes`: receives a list of paths, answers with their sizes.
 * @module
 */

/// <reference lib="deno.worker" />

import { statSizesSync } from "./stat_sizes.ts";

self.onmessage = (e: MessageEvent<string[]>) => {
  const sizes = statSizesSync(e.data);
  self.postMessage(sizes, [sizes.buffer]);
};
