/** Save and put back on a real filesystem, with a real process holding files. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { FILES_DIR, PreserveError, putBackFiles, saveFiles, type SaveInput } from '../../src/checkpoint/preserve.js';

const log = pino({ level: 'silent' });
const cleanups: (() => void)[] = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

const sha = (data: string): string => createHash('sha256').update(data).digest('hex');

async function scene(): Promise<{ dir: string; app: ChildProcess; input: SaveInput }> {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-preserve-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'data/sub'), { recursive: true });
  writeFileSync(join(dir, 'data/a.txt'), 'alpha\n');
  chmodSync(join(dir, 'data/a.txt'), 0o640);
  writeFileSync(join(dir, 'data/sub/b.bin'), Buffer.alloc(3000, 7));
  writeFileSync(join(dir, 'data/skip.tmp'), 'excluded');
  writeFileSync(join(dir, 'ro.txt'), 'read only, unchanged');
  // fd 3 written (the container's own file), fd 4 only read (like the image's files)
  const app = spawn('sh', ['-c', 'exec 3>>held.log 4<ro.txt; echo first >&3; exec sleep 30'], { cwd: dir, stdio: 'ignore' });
  cleanups.push(() => app.kill('SIGKILL'));
  for (let i = 0; i < 200 && !(existsSync(join(dir, 'held.log')) && readFileSync(join(dir, 'held.log'), 'utf8') === 'first\n'); i++) {
    await new Promise((done) => setTimeout(done, 10));
  }
  const incoming = join(dir, 'ck', '.incoming-x');
  mkdirSync(incoming, { recursive: true });
  const input: SaveInput = {
    pid: app.pid as number,
    incoming,
    preserve: [join(dir, 'data')],
    exclude: ['**/*.tmp'],
    limit: 1 << 20,
    // as if the container started after these files were made: only what is written or asked for travels
    startedAt: Date.now() + 60_000,
    ownRoots: [join(dir, 'ck')],
  };
  return { dir, app, input };
}

describe('save and put back', () => {
  test('saves the written file and STASIS_PRESERVE, not the read-only one or excluded ones; puts them back with content and mode', async () => {
    const { dir, input } = await scene();
    const saved = await saveFiles(input, log);
    const paths = saved.entries.map((entry) => entry.path);
    expect(paths).toEqual(expect.arrayContaining([join(dir, 'held.log'), join(dir, 'data'), join(dir, 'data/a.txt'), join(dir, 'data/sub'), join(dir, 'data/sub/b.bin'), dir]));
    expect(paths).not.toContain(join(dir, 'ro.txt'));
    expect(paths).not.toContain(join(dir, 'data/skip.tmp'));
    expect(paths.filter((path) => path.startsWith(join(dir, 'ck')))).toEqual([]);
    expect(saved).toMatchObject({ files: 3, bytes: 6 + 3000 + 6 });
    const held = saved.entries.find((entry) => entry.path === join(dir, 'held.log'));
    expect(held).toMatchObject({ type: 'file', size: 6, sha256: sha('first\n') });
    expect(saved.entries.find((entry) => entry.path === join(dir, 'data/a.txt'))?.mode).toBe(0o640);
    const copy = join(input.incoming, FILES_DIR, dir, 'held.log');
    expect(readFileSync(copy, 'utf8')).toBe('first\n');
    expect(statSync(copy).mode & 0o777).toBe(0o600);

    rmSync(join(dir, 'data'), { recursive: true });
    writeFileSync(join(dir, 'held.log'), 'first\nwritten after the dump\n');
    const result = await putBackFiles(input.incoming, saved.entries);
    expect(result.skipped).toEqual([]);
    expect(result.written).toBe(5); // held.log, data, data/a.txt, data/sub, data/sub/b.bin
    expect(readFileSync(join(dir, 'held.log'), 'utf8')).toBe('first\n');
    expect(readFileSync(join(dir, 'data/a.txt'), 'utf8')).toBe('alpha\n');
    expect(statSync(join(dir, 'data/a.txt')).mode & 0o7777).toBe(0o640);
    expect(statSync(join(dir, 'data/a.txt')).mtimeMs).toBeCloseTo(saved.entries.find((entry) => entry.path === join(dir, 'data/a.txt'))?.mtime ?? 0, 0);
    expect(readFileSync(join(dir, 'data/sub/b.bin'))).toEqual(Buffer.alloc(3000, 7));
    expect(existsSync(join(dir, 'data/skip.tmp'))).toBe(false);

    // a second put-back finds everything in place
    expect(await putBackFiles(input.incoming, saved.entries)).toMatchObject({ written: 0 });
  });

  test('a damaged saved copy fails the put-back, naming the path, before anything is written', async () => {
    const { dir, input } = await scene();
    const saved = await saveFiles(input, log);
    writeFileSync(join(input.incoming, FILES_DIR, dir, 'data/a.txt'), 'alphA\n');
    rmSync(join(dir, 'held.log'));
    await expect(putBackFiles(input.incoming, saved.entries)).rejects.toThrow(new RegExp(`saved copy of ${join(dir, 'data/a.txt')} is damaged`));
    expect(existsSync(join(dir, 'held.log'))).toBe(false);
  });

  test('over the limit: PreserveError naming the biggest file, nothing copied', async () => {
    const { dir, input } = await scene();
    const error = await saveFiles({ ...input, limit: 100 }, log).catch((problem: unknown) => problem);
    expect(error).toBeInstanceOf(PreserveError);
    expect((error as Error).message).toContain(`the biggest: ${join(dir, 'data/sub/b.bin')} (2.9 KiB)`);
    expect(existsSync(join(input.incoming, FILES_DIR))).toBe(false);
  });
});
