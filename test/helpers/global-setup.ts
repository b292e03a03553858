import { missingBuild } from './stasis.js';

/** The e2e tests run the built binary; they never build it themselves. */
export default function setup(): void {
  const missing = missingBuild();
  if (missing !== null) throw new Error(`stasis e2e tests: ${missing}`);
}
