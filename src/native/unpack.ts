import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NativeAddon } from './index.js';

/**
 * Where the single executable may write its addon for dlopen, best first:
 * - /dev/shm: a tmpfs, writable when the root filesystem is read-only;
 * - $TMPDIR (or /tmp): for a host or image whose /dev/shm is unusable;
 * - /dev: container runtimes mount /dev/shm `noexec` (runc's default spec,
 *   Docker, containerd), and dlopen cannot map code from a noexec mount; /dev is
 *   the one tmpfs every OCI container has that is writable by root and not noexec.
 * The folder lives only while the library is loaded: removed right after dlopen.
 */
export function addonDirCandidates(env: Readonly<Record<string, string | undefined>> = process.env, temporary = tmpdir()): string[] {
  const tmp = env.TMPDIR !== undefined && env.TMPDIR !== '' ? env.TMPDIR : temporary;
  return [...new Set(['/dev/shm', tmp, '/tmp', '/dev'])];
}

export interface UnpackAttempt {
  readonly dir: string;
  readonly error: string;
}

/** Thrown when no candidate folder could load the addon; lists every attempt. */
export class AddonUnpackError extends Error {
  constructor(readonly attempts: readonly UnpackAttempt[]) {
    super(`cannot load the native addon from any of: ${attempts.map((a) => `${a.dir} (${a.error})`).join('; ')}`);
    this.name = 'AddonUnpackError';
  }
}

/**
 * Writes `library` (a .node file) into a fresh private folder in the first candidate
 * that works, dlopens it and removes the folder at once: the loaded code stays mapped.
 */
export function loadAddonFrom(library: Uint8Array, candidates: readonly string[] = addonDirCandidates()): NativeAddon {
  const attempts: UnpackAttempt[] = [];
  for (const base of candidates) {
    let dir: string | undefined;
    try {
      dir = mkdtempSync(join(base, 'stasis-addon-'));
      const path = join(dir, 'stasis.node');
      writeFileSync(path, library, { mode: 0o700 });
      const module = { exports: {} as unknown };
      process.dlopen(module, path);
      return module.exports as NativeAddon;
    } catch (error) {
      attempts.push({ dir: base, error: (error as Error).message.split('\n')[0] ?? String(error) });
    } finally {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    }
  }
  throw new AddonUnpackError(attempts);
}
