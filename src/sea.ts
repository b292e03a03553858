/**
 * Entry point of the single executable (dist/stasis): the native addon travels as
 * the SEA asset ADDON_ASSET, unpacked and loaded on first use (src/native/unpack.ts);
 * otherwise the same main as src/main.ts runs. Bundled by scripts/build-sea.mjs; never run from dist/js.
 */
import { getAsset, isSea } from 'node:sea';
import { main } from './entry.js';
import { provideAddon } from './native/index.js';
import { loadAddonFrom } from './native/unpack.js';

const ADDON_ASSET = 'stasis.node';

function start(): void {
  if (!isSea()) {
    process.stderr.write('stasis: this entry point runs only inside the single executable\n');
    process.exit(1);
  }
  provideAddon(() => loadAddonFrom(new Uint8Array(getAsset(ADDON_ASSET))));
  void main(process.argv);
}

start();
