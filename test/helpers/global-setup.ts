import { chmodSync, mkdirSync } from 'node:fs';
import { E2E_TMPDIR, ROOT, missingBuild } from './stasis.js';

/**
 * The e2e tests run the built binary; they never build it themselves. Their
 * containers get a fresh /tmp, so what a test shares with one lives under
 * E2E_TMPDIR (vitest.config.ts makes it the tests' TMPDIR).
 */
export default function setup(): void {
  const missing = missingBuild();
  if (missing !== null) throw new Error(`stasis e2e tests: ${missing}`);
  if (ROOT === '/tmp' || ROOT.startsWith('/tmp/')) {
    throw new Error(`stasis e2e tests: the checkout ${ROOT} is under /tmp, which every test container replaces with a fresh one (so bin/stasis and the fixtures are not found there); clone it elsewhere`);
  }
  mkdirSync(E2E_TMPDIR, { recursive: true });
  chmodSync(E2E_TMPDIR, 0o1777); // like /tmp: tests make folders for other users in it
}
