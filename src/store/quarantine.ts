import { keyOf } from './location.js';
import { MANIFEST, QUARANTINE, REASON } from './manifest.js';
import type { StoreTarget } from './target.js';

/**
 * Moves a damaged generation to PREFIX/quarantine/ID/ with reason.txt: its manifest is
 * removed first (so it is never tried again even if the rest fails), then every object
 * is copied there and deleted. Returns the quarantine folder's key.
 */
export async function quarantineRemote(target: StoreTarget, id: string, reason: string): Promise<string> {
  const { bucket, location } = target;
  const where = keyOf(location, QUARANTINE, id);
  await bucket.put(`${where}/${REASON}`, `${reason}\n`);
  await bucket.copy(keyOf(location, id, MANIFEST), `${where}/${MANIFEST}`).catch(() => undefined);
  await bucket.delete([keyOf(location, id, MANIFEST)]);
  const left = await bucket.list(keyOf(location, id));
  for (const entry of left) {
    await bucket.copy(keyOf(location, id, entry.name), `${where}/${entry.name}`);
    await bucket.delete([keyOf(location, id, entry.name)]);
  }
  return where;
}
