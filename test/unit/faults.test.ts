import { describe, expect, test } from 'vitest';
import { FORMAT_VERSION, fingerprint, judgeGeneration } from '../../src/checkpoint/layout.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { explainCriuErrors, explainFsError } from '../../src/criu/log.js';

const DIR = '/checkpoints';

describe('explainCriuErrors: known causes in plain words', () => {
  test('a full checkpoint volume (criu 4.1.1 dump log lines)', () => {
    const errors = [
      'Error (criu/page-xfer.c:263): page-xfer: Unable to spice data: No space left on device',
      'Error (criu/bfd.c:131): bfd: Error flushing image: No space left on device',
      "Error (criu/mem.c:672): Can't dump page with parasite",
    ];
    expect(explainCriuErrors(errors, DIR)).toMatch(/^the checkpoint volume is full \(No space left on device\) at \/checkpoints: /);
  });

  test('quota and read-only volumes', () => {
    expect(explainCriuErrors(['Error (criu/image.c:1): open: Disk quota exceeded'], DIR)).toMatch(/quota/);
    expect(explainCriuErrors(['Error (criu/log.c:1): Can\'t open log: Read-only file system'], DIR)).toMatch(/read-only at \/checkpoints/);
  });

  test('a taken PID names the PID and, when known, what holds it', () => {
    const errors = ["Error (criu/cr-restore.c:1406): Can't fork for 10000: File exists", 'Error (criu/cr-restore.c:2521): Restoring FAILED.'];
    expect(explainCriuErrors(errors, DIR, { whoHas: (pid) => (pid === 10000 ? 'sleep' : undefined) })).toMatch(
      /^PID 10000 of the checkpointed app is taken in this container by "sleep": /,
    );
    expect(explainCriuErrors(errors, DIR)).toMatch(/^PID 10000 of the checkpointed app is taken in this container: /);
  });

  test('criu older than 4.2 on Linux 6.16+: sockets cannot be dumped', () => {
    const errors = ["Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported", 'Error (criu/cr-dump.c:2111): Dumping FAILED.'];
    expect(explainCriuErrors(errors, DIR)).toMatch(/criu 4\.2 or newer/);
  });

  test("an app under a seccomp filter (podman's default) without CAP_SYS_ADMIN: names seccomp unconfined", () => {
    const errors = ['Error (compel/src/lib/ptrace.c:27): suspending seccomp failed: Operation not permitted', 'Error (compel/src/lib/infect.c:418): Unable to detach from 10000: No such process', 'Error (criu/cr-dump.c:2111): Dumping FAILED.'];
    expect(explainCriuErrors(errors, DIR)).toMatch(/seccomp filter .*CAP_SYS_ADMIN: run the container with seccomp unconfined/);
  });

  test('TCP network locking without iptables-restore', () => {
    const errors = ['Error (criu/util.c:657): exited, status=127', 'Error (criu/netfilter.c:105): Iptables configuration failed', 'Error (criu/sk-tcp.c:81): tcp: Failed to lock TCP connection acaaf'];
    expect(explainCriuErrors(errors, DIR)).toMatch(/install iptables, or pass "--network-lock nftables"/);
  });

  test('limits of another user\'s process: names the process and its uid, and SYS_RESOURCE', () => {
    const errors = ["Error (criu/cr-dump.c:323): Can't get rlimit 0: Operation not permitted", 'Error (criu/cr-dump.c:2111): Dumping FAILED.'];
    expect(explainCriuErrors(errors, DIR, { otherUsers: [{ pid: 12, uid: 65534 }] })).toMatch(
      /^process 12 of the app runs as uid 65534; criu needs CAP_SYS_RESOURCE .*add SYS_RESOURCE/,
    );
    expect(explainCriuErrors(errors, DIR)).toMatch(/^a process of the app runs as another user; criu needs CAP_SYS_RESOURCE/);
  });

  test('anything else: no explanation (the criu lines speak for themselves)', () => {
    expect(explainCriuErrors(["Error (criu/files-reg.c:1790): Can't lookup mount=26 for fd=2 path=/tmp/err1"], DIR)).toBeUndefined();
    expect(explainCriuErrors([], DIR)).toBeUndefined();
  });

  test('errno codes of stasis itself', () => {
    expect(explainFsError('ENOSPC', DIR)).toMatch(/volume is full/);
    expect(explainFsError('EROFS', DIR)).toMatch(/read-only/);
    expect(explainFsError('EDQUOT', DIR)).toMatch(/quota/);
    expect(explainFsError('EACCES', DIR)).toBeUndefined();
    expect(explainFsError(undefined, DIR)).toBeUndefined();
  });
});

describe('judgeGeneration: the size manifest', () => {
  const argv = ['/app/counter.sh'];
  const expected = fingerprint(argv, '1.0');
  const images = { 'inventory.img': 86, 'pstree.img': 45, 'pages-1.img': 126976 };
  const metadata = (extra: Record<string, unknown> = {}): string =>
    JSON.stringify({ format: FORMAT_VERSION, fingerprint: expected, argv, appVersion: '1.0', stdio: [], images, ...extra });
  const files = Object.keys(images);

  test('files with the recorded sizes: restorable; extra files written later (restore.log) do not matter', () => {
    expect(judgeGeneration(metadata(), files, expected, { ...images, 'restore.log': 5000 }).kind).toBe('restorable');
  });

  test('a truncated or missing image: broken, naming the file, its size and the expected size', () => {
    const truncated = judgeGeneration(metadata(), files, expected, { ...images, 'pages-1.img': 63488 });
    expect(truncated).toEqual({ kind: 'broken', reason: 'images damaged (truncated or changed since the dump): pages-1.img is 63488 bytes, expected 126976' });
    const gone = judgeGeneration(metadata(), ['inventory.img', 'pstree.img'], expected, { 'inventory.img': 86, 'pstree.img': 45 });
    expect(gone).toMatchObject({ kind: 'broken', reason: expect.stringMatching(/pages-1\.img is missing, expected 126976/) });
  });

  test('a generation without a manifest (older stasis) or no sizes given: not checked', () => {
    expect(judgeGeneration(metadata({ images: undefined }), files, expected, { ...images, 'pages-1.img': 1 }).kind).toBe('restorable');
    expect(judgeGeneration(metadata(), files, expected).kind).toBe('restorable');
  });

  test('another app version: foreign, and the reason names the version it was made for', () => {
    const verdict = judgeGeneration(metadata(), files, fingerprint(argv, '2.0'));
    expect(verdict).toEqual({ kind: 'foreign', reason: 'made for another command or app version: ["/app/counter.sh"] version "1.0"' });
  });
});

describe('STASIS_INTERVAL upper bound', () => {
  test('up to 596h is taken; longer would overflow Node timers (they would fire every millisecond)', () => {
    expect(loadConfig({ STASIS_INTERVAL: '596h' }).interval).toBe(596 * 3_600_000);
    for (const value of ['597h', '600h', '2147484s']) {
      expect(() => loadConfig({ STASIS_INTERVAL: value })).toThrow(ConfigError);
      expect(() => loadConfig({ STASIS_INTERVAL: value })).toThrow(/at most 596h/);
    }
  });
});
