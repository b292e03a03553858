import { describe, expect, test } from 'vitest';
import { judgeLazyEnd } from '../../src/checkpoint/lazy.js';
import { judgeLazyPages } from '../../src/commands/checks.js';
import { lazyPagesArgs, lazyProbeArgs, restoreArgs } from '../../src/criu/args.js';
import { judgeLazyProbe } from '../../src/criu/log.js';

const restoreBase = { imagesDir: '/ck/gen-000001', pidfile: '/ck/gen-000001/restore.pid', inherit: [], tcp: 'off', fileLocks: false, extUnixSockets: false, unprivileged: false, lazy: false, extra: [] } as const;

describe('lazy restore command lines', () => {
  test('restore gets --lazy-pages only when lazy, before the extra options', () => {
    expect(restoreArgs(restoreBase)).not.toContain('--lazy-pages');
    expect(restoreArgs({ ...restoreBase, lazy: true, extra: ['-v2'] }).slice(-2)).toEqual(['--lazy-pages', '-v2']);
  });

  test('the daemon serves the generation in the foreground, logs beside restore.log and reports readiness on a status fd', () => {
    expect(lazyPagesArgs({ imagesDir: '/ck/gen-000001', statusFd: 3, unprivileged: false })).toEqual([
      'lazy-pages', '--images-dir', '/ck/gen-000001', '--log-file', 'lazy-pages.log', '-v2', '--status-fd', '3',
    ]);
    expect(lazyPagesArgs({ imagesDir: '/x', statusFd: 3, unprivileged: true }).at(-1)).toBe('--unprivileged');
    expect(lazyPagesArgs({ imagesDir: '/x', statusFd: 3, unprivileged: false })).not.toContain('--daemon');
  });

  test('the probe asks for non-cooperative userfaultfd, as criu runs (privileged or not)', () => {
    expect(lazyProbeArgs(false)).toEqual(['check', '--feature', 'uffd-noncoop']);
    expect(lazyProbeArgs(true)).toEqual(['check', '--feature', 'uffd-noncoop', '--unprivileged']);
  });
});

describe('judgeLazyProbe', () => {
  test('exit 0 is support', () => {
    expect(judgeLazyProbe({ exitCode: 0, output: 'uffd-noncoop is supported' })).toEqual({ ok: true });
  });

  test("a failure names criu's own error line, not the harmless ones", () => {
    const output = [
      "Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
      'Warn  (criu/kerndat.c:1195): $XDG_RUNTIME_DIR not set.',
      'Error (criu/cr-check.c:1225): UFFD is not supported',
    ].join('\n');
    const verdict = judgeLazyProbe({ exitCode: 1, output });
    expect(verdict.ok).toBe(false);
    expect(!verdict.ok && verdict.reason).toMatch(/exit 1\): UFFD is not supported: this kernel or criu has no non-cooperative userfaultfd/);
    expect(!verdict.ok && verdict.reason).not.toMatch(/RLIMIT/);
  });

  test('criu that cannot run at all', () => {
    const verdict = judgeLazyProbe({ exitCode: undefined, output: 'spawn /nope ENOENT' });
    expect(!verdict.ok && verdict.reason).toBe('cannot run criu check: spawn /nope ENOENT');
  });
});

describe('judgeLazyEnd', () => {
  test('exit 0 with the app running: every page is in', () => {
    expect(judgeLazyEnd({ code: 0, signal: null, errors: [] }, true)).toEqual({ kind: 'served' });
  });

  test('exit 0 with the app gone: it exited before every page was in, nothing left to serve', () => {
    expect(judgeLazyEnd({ code: 0, signal: null, errors: [] }, false)).toEqual({ kind: 'app-gone' });
  });

  test('a daemon that failed or was killed: failed with its errors, also when the app is gone by now (it may have crashed on zeroed pages)', () => {
    expect(judgeLazyEnd({ code: 1, signal: null, errors: ['Error during UFFD copy'] }, true)).toEqual({ kind: 'failed', errors: ['Error during UFFD copy'] });
    expect(judgeLazyEnd({ code: null, signal: 'SIGKILL', errors: ['criu lazy-pages was killed by SIGKILL'] }, true).kind).toBe('failed');
    expect(judgeLazyEnd({ code: null, signal: 'SIGKILL', errors: [] }, false).kind).toBe('failed');
  });
});

describe('judgeLazyEnd when stasis exits', () => {
  test('a daemon stasis killed itself on its way out is "stopped", not a failure', () => {
    expect(judgeLazyEnd({ code: null, signal: 'SIGKILL', errors: [] }, false, true)).toEqual({ kind: 'stopped' });
    expect(judgeLazyEnd({ code: 1, signal: null, errors: ['x'] }, false, true).kind).toBe('failed');
  });
});

describe('doctor: lazy pages', () => {
  test('supported is ok and says whether STASIS_LAZY is on', () => {
    expect(judgeLazyPages({ exitCode: 0, output: '' }, true)).toMatchObject({ status: 'ok', detail: expect.stringContaining('STASIS_LAZY=true') });
    expect(judgeLazyPages({ exitCode: 0, output: '' }).detail).toMatch(/STASIS_LAZY is off/);
  });

  test('unsupported is a warning (restores fall back), never a failure', () => {
    const check = judgeLazyPages({ exitCode: 1, output: 'Error (criu/cr-check.c:1225): UFFD is not supported' }, true);
    expect(check.status).toBe('warn');
    expect(check.detail).toMatch(/UFFD is not supported.*falls back to normal restores/);
  });
});
