/**
 * The per-file set-up of the checkpoint e2e tests: criu must be there, and every
 * container and temporary folder a test made is killed or removed after it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll } from 'vitest';
import { Container, missingCriu } from './container.js';

export interface Lab {
  /** Starts a container that is killed after the test, if still running. */
  container(command: readonly string[], env: Record<string, string>): Container;
  /** A fresh folder under the system's temp dir, removed after the test. */
  tempDir(): string;
}

export function useLab(prefix: string): Lab {
  const running: Container[] = [];
  const dirs: string[] = [];
  beforeAll(() => {
    const missing = missingCriu();
    if (missing) throw new Error(missing);
  });
  afterEach(async () => {
    for (const container of running.splice(0)) await container.kill();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return {
    container(command, env) {
      const started = new Container(command, env);
      running.push(started);
      return started;
    },
    tempDir() {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(dir);
      return dir;
    },
  };
}
