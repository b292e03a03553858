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
  /** prctl(PR_SET_NAME): the calling thread's name, /proc/PID/comm for the main thread (at most 15 bytes are kept). */
  setName(name: string): void;
  /** waitpid(WNOHANG) every child that is not in `exclude`; returns the ones reaped. */
  reap(exclude: readonly number[]): ReapedChild[];
  /** Moves the PID counter past floor - 1 by forking children that exit at once ('none': it was there already). */
  raisePidFloor(floor: number): { method: 'fork' | 'none'; lastPid: number };
  /** PID of the process that connected the unix socket `fd` (SO_PEERCRED); 0 when it is outside our PID namespace. */
  peerPid(fd: number): number;
}

let addon: NativeAddon | undefined;
let provider: (() => NativeAddon) | undefined;

/**
 * Set by the single-executable entry point, which unpacks the addon from its assets:
 * the addon itself, or a loader that runs on first use (so --help and --version
 * never touch it).
 */
export function provideAddon(loaded: NativeAddon | (() => NativeAddon)): void {
  if (typeof loaded === 'function') provider = loaded;
  else addon = loaded;
}

export function native(): NativeAddon {
  if (addon) return addon;
  if (provider) {
    addon = provider();
    return addon;
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '../../../build/Release/stasis.node'), join(here, '../../build/Release/stasis.node')];
  const path = candidates.find((candidate) => existsSync(candidate));
  if (!path) throw new Error(`native addon not built (looked for ${candidates.join(', ')}); run npm run build`);
  addon = createRequire(import.meta.url)(path) as NativeAddon;
  return addon;
}
