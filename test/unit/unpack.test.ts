import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { AddonUnpackError, addonDirCandidates, loadAddonFrom } from '../../src/native/unpack.js';
import { ROOT } from '../helpers/stasis.js';

const ADDON = join(ROOT, 'build/Release/stasis.node');
const made: string[] = [];

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-unpack-'));
  made.push(dir);
  return dir;
}

describe('addonDirCandidates', () => {
  test('/dev/shm first, then $TMPDIR, /tmp, and /dev (exec-capable in every OCI container)', () => {
    expect(addonDirCandidates({ TMPDIR: '/scratch' })).toEqual(['/dev/shm', '/scratch', '/tmp', '/dev']);
    expect(addonDirCandidates({}, '/tmp')).toEqual(['/dev/shm', '/tmp', '/dev']);
    expect(addonDirCandidates({ TMPDIR: '' }, '/var/tmp')).toEqual(['/dev/shm', '/var/tmp', '/tmp', '/dev']);
  });
});

describe('loadAddonFrom', () => {
  test('skips a folder it cannot use, loads from the next one and leaves nothing behind', () => {
    const good = scratch();
    const addon = loadAddonFrom(readFileSync(ADDON), [join(good, 'missing'), good]);
    expect(typeof addon.reap).toBe('function');
    expect(addon.reap([process.pid])).toEqual([]);
    expect(readdirSync(good)).toEqual([]);
  });

  test('names every folder it tried and why, when none works', () => {
    const base = scratch();
    const attempt = (): unknown => loadAddonFrom(Buffer.from('not an ELF file'), [join(base, 'missing'), base]);
    expect(attempt).toThrow(AddonUnpackError);
    try {
      attempt();
    } catch (error) {
      const { attempts } = error as AddonUnpackError;
      expect(attempts.map((a) => a.dir)).toEqual([join(base, 'missing'), base]);
      expect(attempts[0]?.error).toMatch(/ENOENT/);
      expect(attempts[1]?.error).toMatch(/invalid ELF header|file too short/);
    }
    expect(readdirSync(base)).toEqual([]);
    expect(existsSync(join(base, 'missing'))).toBe(false);
  });
});
