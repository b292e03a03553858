import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';

export interface ReapedChild {
  readonly pid: number;
  readonly code: number | null;
  readonly signal: number | null;
}

export interface NativeAddon {
  setChildSubreaper(): void;
  isChildSubreaper(): boolean;
  cloexecFrom3(): void;
  /** waitpid(WNOHANG) every child that is not in `exclude`; returns the ones reaped. */
  reap(exclude: readonly number[]): ReapedChild[];
  raisePidFloor(floor: number): { method: 'set_tid' | 'fork' | 'none'; lastPid: number };
}

let addon: NativeAddon | undefined;

/** Set by the single-executable entry point, which unpacks the addon from its assets. */
export function provideAddon(loaded: NativeAddon): void {
  addon = loaded;
}

export function native(): NativeAddon {
  if (addon) return addon;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '../../../build/Release/stasis.node'), join(here, '../../build/Release/stasis.node')];
  const path = candidates.find((candidate) => existsSync(candidate));
  if (!path) throw new Error(`native addon not built (looked for ${candidates.join(', ')}); run npm run build`);
  addon = createRequire(import.meta.url)(path) as NativeAddon;
  return addon;
}
