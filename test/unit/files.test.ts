import { describe, expect, test } from 'vitest';
import { foldersBetween, isExcluded, overLimit, putBackAction, shouldSave, type HeldPath, type PreservedEntry } from '../../src/checkpoint/files.js';
import { mergeHeld, openedForWriting, parseMaps, parseNetUnix } from '../../src/checkpoint/held.js';
import { classifyMount, mountOf, parseMountinfo, storageOf } from '../../src/checkpoint/mounts.js';

/** What a pod's container sees: overlay root, tmpfs scratch, a PVC, an emptyDir, kubelet files, a configmap. */
const POD = `\
1210 1150 0:310 / / rw,relatime master:419 - overlay overlay rw,lowerdir=/var/lib/containerd/l1,upperdir=/var/lib/containerd/u,workdir=/var/lib/containerd/w
1211 1210 0:312 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1212 1210 0:313 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
1215 1212 0:316 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
1216 1210 0:317 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
1220 1210 0:320 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw,mode=1777
1221 1210 0:321 / /run rw,nosuid,nodev - tmpfs tmpfs rw,mode=755
1222 1210 8:16 / /checkpoints rw,relatime - ext4 /dev/sdb rw
1223 1210 259:1 /var/lib/kubelet/pods/5f1c/volumes/kubernetes.io~empty-dir/cache /var/cache/app rw,relatime - ext4 /dev/nvme0n1p1 rw
1224 1210 259:1 /var/lib/kubelet/pods/5f1c/etc-hosts /etc/hosts rw,relatime - ext4 /dev/nvme0n1p1 rw
1225 1210 0:322 /..data/config /etc/app ro,relatime - tmpfs tmpfs rw
1226 1210 259:1 /srv/with\\040space /mnt/with\\040space rw,relatime - ext4 /dev/nvme0n1p1 rw
`;

/** The e2e "containers": the host's root, a private tmpfs /tmp and /run over the host's. */
const TEST_CONTAINER = `\
26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
21 26 0:20 / /proc rw,relatime - proc proc rw
24 23 0:22 / /dev/shm rw,relatime - tmpfs tmpfs rw
29 24 0:26 / /dev/shm rw,relatime - tmpfs tmpfs rw
300 26 0:90 / /tmp rw,relatime - tmpfs tmpfs rw
301 26 0:91 / /run rw,relatime - tmpfs tmpfs rw
`;

describe('mountinfo', () => {
  const pod = parseMountinfo(POD);

  test('parses every line, unescaping octal escapes', () => {
    expect(pod).toHaveLength(12);
    expect(pod[0]).toMatchObject({ id: 1210, parent: 1150, root: '/', mountPoint: '/', fsType: 'overlay', source: 'overlay' });
    expect(pod.at(-1)).toMatchObject({ root: '/srv/with space', mountPoint: '/mnt/with space' });
    expect(parseMountinfo('garbage\n\n1 2 3')).toEqual([]);
  });

  test("a pod: the overlay root and tmpfs are the container's own, a PVC and kubelet files are volumes, the rest is fixed", () => {
    const where = (path: string) => storageOf(path, pod);
    expect(where('/app/data.db')).toBe('root');
    expect(where('/tmp/hsperfdata_root/10000')).toBe('scratch');
    expect(where('/run/app/sock')).toBe('scratch');
    expect(where('/dev/shm/seg')).toBe('scratch');
    expect(where('/var/cache/app/blob')).toBe('scratch'); // an emptyDir does not follow the pod to another node
    expect(where('/checkpoints/gen-000001')).toBe('volume');
    expect(where('/etc/hosts')).toBe('volume');
    expect(where('/etc/app/settings.yaml')).toBe('fixed'); // a configmap, read-only
    expect(where('/proc/1/status')).toBe('fixed');
    expect(where('/sys/kernel')).toBe('fixed');
    expect(where('/tmpfoo')).toBe('root'); // a prefix of a mount point is not inside it
  });

  test('a test container: the shared host root counts as the root filesystem, the newest of stacked mounts wins', () => {
    const mounts = parseMountinfo(TEST_CONTAINER);
    expect(storageOf('/var/tmp/stasis-x/checkpoints', mounts)).toBe('root');
    expect(storageOf('/tmp/app.log', mounts)).toBe('scratch');
    expect(mountOf('/dev/shm/x', mounts)?.id).toBe(29);
  });

  test('a read-only root filesystem is fixed', () => {
    const [root] = parseMountinfo('26 1 254:0 /rootfs / ro,relatime - ext4 /dev/vda rw');
    expect(root && classifyMount(root)).toBe('fixed');
  });
});

describe('what the app holds', () => {
  test('maps: file-backed mappings only, deleted ones left to criu, shared writable ones marked', () => {
    const maps = [
      '55d0c0a00000-55d0c0a02000 r--p 00000000 fe:00 1234   /usr/bin/python3.11',
      '7f0000000000-7f0000008000 rw-s 00000000 00:5a 77     /tmp/hsperfdata_root/10000',
      '7f0000010000-7f0000020000 rw-p 00000000 00:00 0 ',
      '7f0000020000-7f0000030000 rw-s 00000000 00:01 9      /dev/zero (deleted)',
      '7f0000030000-7f0000040000 r--s 00000000 00:5a 78     /tmp/a file with spaces',
      '7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0      [stack]',
    ].join('\n');
    expect(parseMaps(maps)).toEqual([
      { path: '/usr/bin/python3.11', writable: false },
      { path: '/tmp/hsperfdata_root/10000', writable: true },
      { path: '/tmp/a file with spaces', writable: false },
    ]);
  });

  test('/proc/net/unix: bound paths by inode; abstract and unbound sockets left out', () => {
    const text = [
      'Num       RefCount Protocol Flags    Type St Inode Path',
      '0000000000000000: 00000002 00000000 00010000 0001 01 31337 /run/app/app.sock',
      '0000000000000000: 00000002 00000000 00010000 0001 01 31338 @/containerd-shim/abc',
      '0000000000000000: 00000003 00000000 00000000 0001 03 31339',
    ].join('\n');
    expect([...parseNetUnix(text)]).toEqual([[31337, '/run/app/app.sock']]);
  });

  test('fdinfo flags: write-only and read-write count as writing', () => {
    expect(openedForWriting('pos:\t0\nflags:\t0102001\nmnt_id:\t26\n')).toBe(true);
    expect(openedForWriting('pos:\t0\nflags:\t0100002\n')).toBe(true);
    expect(openedForWriting('pos:\t0\nflags:\t0100000\n')).toBe(false);
    expect(openedForWriting('')).toBe(false);
  });

  test('one entry per path, writable if any holder writes', () => {
    const held: HeldPath[] = [
      { path: '/tmp/x', kind: 'file', reason: 'mapped', writable: false },
      { path: '/tmp/x', kind: 'file', reason: 'open', writable: true },
      { path: '/run/app', kind: 'dir', reason: 'socket', writable: false },
    ];
    expect(mergeHeld(held)).toEqual([
      { path: '/tmp/x', kind: 'file', reason: 'mapped', writable: true },
      { path: '/run/app', kind: 'dir', reason: 'socket', writable: false },
    ]);
  });
});

describe('the selection rule', () => {
  const started = Date.parse('2026-12-05T09:00:00Z');
  const before = started - 86_400_000;
  const after = started + 1000;
  const file = (reason: HeldPath['reason'], writable = false): HeldPath => ({ path: '/x', kind: 'file', reason, writable });

  test('tmpfs: everything', () => {
    expect(shouldSave(file('mapped'), { storage: 'scratch', ctime: before, birthtime: 0 }, started)).toBe(true);
  });

  test('root filesystem: the image stays out, what the container wrote or changed goes in', () => {
    expect(shouldSave(file('mapped'), { storage: 'root', ctime: before, birthtime: 0 }, started)).toBe(false); // libc, the JDK
    expect(shouldSave(file('open'), { storage: 'root', ctime: before, birthtime: 0 }, started)).toBe(false); // the app's script
    expect(shouldSave(file('open', true), { storage: 'root', ctime: before, birthtime: 0 }, started)).toBe(true); // opened for writing
    expect(shouldSave(file('open'), { storage: 'root', ctime: after, birthtime: 0 }, started)).toBe(true); // created or written since
    expect(shouldSave(file('preserve'), { storage: 'root', ctime: before, birthtime: 0 }, started)).toBe(true); // asked for
  });

  test('a folder on the root filesystem: only one created since the start (the ctime of an old one changes with its files)', () => {
    const cwd: HeldPath = { path: '/app', kind: 'dir', reason: 'cwd', writable: false };
    expect(shouldSave(cwd, { storage: 'root', ctime: after, birthtime: before }, started)).toBe(false);
    expect(shouldSave(cwd, { storage: 'root', ctime: after, birthtime: after }, started)).toBe(true);
    expect(shouldSave(cwd, { storage: 'root', ctime: after, birthtime: 0 }, started)).toBe(true); // no btime: ctime decides
  });

  test('volumes and read-only storage: never', () => {
    expect(shouldSave(file('open', true), { storage: 'volume', ctime: after, birthtime: 0 }, started)).toBe(false);
    expect(shouldSave(file('preserve'), { storage: 'volume', ctime: after, birthtime: 0 }, started)).toBe(false);
    expect(shouldSave(file('open', true), { storage: 'fixed', ctime: after, birthtime: 0 }, started)).toBe(false);
  });

  test('excludes: globs match the path or a folder above it; the checkpoint directory is always out', () => {
    expect(isExcluded('/tmp/cache/a/b.bin', ['/tmp/cache'])).toBe(true);
    expect(isExcluded('/tmp/app.log', ['/tmp/*.log'])).toBe(true);
    expect(isExcluded('/tmp/sub/app.log', ['/tmp/*.log'])).toBe(false);
    expect(isExcluded('/tmp/sub/app.log', ['**/*.log'])).toBe(true);
    expect(isExcluded('/var/spool/x', ['/var/spool/**'])).toBe(true);
    expect(isExcluded('/tmp/app.log', [])).toBe(false);
    expect(isExcluded('/ck/gen-000001/pages-1.img', [], ['/ck'])).toBe(true);
    expect(isExcluded('/ckx/file', [], ['/ck'])).toBe(false);
  });

  test('folders between a mount point and a path, outermost first', () => {
    expect(foldersBetween('/tmp', '/tmp/hsperfdata_root/10000')).toEqual(['/tmp/hsperfdata_root']);
    expect(foldersBetween('/', '/var/lib/app/db')).toEqual(['/var', '/var/lib', '/var/lib/app']);
    expect(foldersBetween('/run', '/run/app')).toEqual([]);
  });

  test('the limit: a message naming the biggest files first, total and limit', () => {
    const MiB = 1 << 20;
    const entries = [
      { path: '/tmp/small', size: 1 * MiB },
      { path: '/tmp/huge.bin', size: 300 * MiB },
      { path: '/tmp/mid', size: 20 * MiB },
    ];
    expect(overLimit(entries, 512 * MiB)).toBeUndefined();
    const message = overLimit(entries, 256 * MiB);
    expect(message).toContain('321.0 MiB in 3 files, over STASIS_PRESERVE_LIMIT (256.0 MiB)');
    expect(message).toMatch(/biggest: \/tmp\/huge\.bin \(300\.0 MiB\), \/tmp\/mid \(20\.0 MiB\), \/tmp\/small/);
    expect(message).toContain('STASIS_PRESERVE_EXCLUDE');
  });
});

describe('put-back decision', () => {
  const saved: PreservedEntry = { path: '/tmp/app.log', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1, size: 5, sha256: 'abc' };
  const dir: PreservedEntry = { path: '/run/app', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 1, size: 0 };
  const same = { kind: 'file', size: 5, mode: 0o644, uid: 0, gid: 0, sha256: 'abc' } as const;

  test('missing or different files are written, equal ones kept, changed mode or owner fixed', () => {
    expect(putBackAction(saved, 'scratch', { kind: 'missing' })).toEqual({ action: 'write' });
    expect(putBackAction(saved, 'scratch', { ...same, size: 9 })).toEqual({ action: 'write' });
    expect(putBackAction(saved, 'root', { ...same, sha256: 'other' })).toEqual({ action: 'write' });
    expect(putBackAction(saved, 'scratch', same)).toEqual({ action: 'keep' });
    expect(putBackAction(saved, 'scratch', { ...same, mode: 0o600 })).toEqual({ action: 'chmod' });
  });

  test('never over a file on a volume', () => {
    expect(putBackAction(saved, 'volume', { ...same, sha256: 'other' })).toMatchObject({ action: 'skip' });
    expect(putBackAction(saved, 'volume', { kind: 'missing' })).toMatchObject({ action: 'skip' });
  });

  test('folders are made when missing; something else in the way fails', () => {
    expect(putBackAction(dir, 'scratch', { kind: 'missing' })).toEqual({ action: 'mkdir' });
    expect(putBackAction(dir, 'scratch', { kind: 'dir', mode: 0o700, uid: 0, gid: 0 })).toEqual({ action: 'keep' });
    expect(putBackAction(dir, 'scratch', same)).toMatchObject({ action: 'fail' });
    expect(putBackAction(saved, 'scratch', { kind: 'dir', mode: 0o755, uid: 0, gid: 0 })).toMatchObject({ action: 'fail', reason: 'a folder is in the way' });
  });

  test('read-only storage: fine when equal, a failure when missing or different', () => {
    expect(putBackAction(saved, 'fixed', same)).toEqual({ action: 'keep' });
    expect(putBackAction(saved, 'fixed', { kind: 'missing' })).toMatchObject({ action: 'fail' });
    expect(putBackAction(saved, 'fixed', { ...same, sha256: 'x' })).toMatchObject({ action: 'fail' });
  });
});
