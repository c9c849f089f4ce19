/**
 * Making a folder's entries (new names, renames, links) durable.
 * @module
 */

/**
 * Flushes a folder's entries to storage with `fsync` on the folder. Some file systems refuse
 * `fsync` on a folder; then the names are as durable as that file system makes them, and
 * nothing is reported.
 */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } catch {
    // refused by the file system: nothing more can be done here
  } finally {
    handle.close();
  }
}
