import { openSync, closeSync, statSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { classifyFd, identifyFd, major, passStdin } from '../../src/stdio.js';

/** glibc makedev(). */
function makedev(major: number, minor: number): number {
  return (major & 0xfff) * 2 ** 8 + (minor & 0xff) + Math.floor(minor / 2 ** 8) * 2 ** 20 + Math.floor(major / 2 ** 12) * 2 ** 44;
}

describe('major', () => {
  test.each([
    [1, 3],
    [4, 1],
    [5, 1],
    [136, 0],
    [136, 255],
    [136, 300],
    [143, 1048575],
    [4095, 7],
    [4096, 0],
    [0x12345, 2],
  ])('major(makedev(%i, %i))', (maj, min) => {
    expect(major(makedev(maj, min))).toBe(maj);
  });
  test('/dev/pts/0 as Node reports it (34816) is major 136', () => {
    expect(major(34816)).toBe(136);
  });
});

describe('classifyFd', () => {
  test('pipe and socket: external, keyed by their link', () => {
    expect(classifyFd(0, 'pipe:[15865]')).toEqual({ fd: 0, kind: 'pipe', target: 'pipe:[15865]', inheritKey: 'pipe:[15865]' });
    expect(classifyFd(1, 'socket:[42]')).toEqual({ fd: 1, kind: 'socket', target: 'socket:[42]', inheritKey: 'socket:[42]' });
  });
  test('/dev/null (even with its char device numbers)', () => {
    expect(classifyFd(0, '/dev/null', makedev(1, 3), 5)).toEqual({ fd: 0, kind: 'null', target: '/dev/null', inheritKey: null });
  });
  test('anon inodes', () => {
    expect(classifyFd(2, 'anon_inode:[eventfd]')).toMatchObject({ kind: 'anon', inheritKey: null });
  });
  test('closed', () => {
    expect(classifyFd(2, null)).toEqual({ fd: 2, kind: 'closed', target: '', inheritKey: null });
  });
  test.each([
    ['/dev/pts/3', 136, 3],
    ['/dev/pts/300', 136, 300],
    ['/dev/tty1', 4, 1],
    ['/dev/ttyS0', 4, 64],
    ['/dev/console', 5, 1],
    ['/dev/pts/70000', 143, 70000],
  ])('%s (major %i) is a tty keyed tty[rdev:dev] in hex', (target, maj, min) => {
    const rdev = makedev(maj, min);
    expect(classifyFd(0, target, rdev, 0x19)).toEqual({ fd: 0, kind: 'tty', target, inheritKey: `tty[${rdev.toString(16)}:19]` });
  });
  test('other char devices and regular files are files', () => {
    expect(classifyFd(0, '/dev/zero', makedev(1, 5), 5)).toMatchObject({ kind: 'file', inheritKey: null });
    expect(classifyFd(0, '/var/log/app.log')).toMatchObject({ kind: 'file', inheritKey: null });
    expect(classifyFd(0, '/tmp/fifo')).toMatchObject({ kind: 'file' });
  });
  test('a path that only looks like a pipe is a file', () => {
    expect(classifyFd(0, '/tmp/pipe:[1]')).toMatchObject({ kind: 'file' });
  });
});

describe('passStdin', () => {
  test.each([
    ['pipe:[1]', 0, true],
    ['socket:[1]', 0, true],
    ['/dev/pts/0', makedev(136, 0), true],
    ['/dev/null', makedev(1, 3), false],
    ['/etc/hostname', 0, false],
    ['anon_inode:[eventfd]', 0, false],
    [null, 0, false],
  ] as const)('%s: %s', (target, rdev, passed) => {
    expect(passStdin(classifyFd(0, target, rdev))).toBe(passed);
  });
});

describe('identifyFd (this process)', () => {
  test('an open regular file and a closed fd', () => {
    const fd = openSync('/etc/hostname', 'r');
    try {
      expect(identifyFd('self', fd)).toEqual({ fd, kind: 'file', target: '/etc/hostname', inheritKey: null });
    } finally {
      closeSync(fd);
    }
    expect(identifyFd('self', 1_000_000).kind).toBe('closed');
  });
  test('/dev/null', () => {
    const fd = openSync('/dev/null', 'r');
    try {
      expect(identifyFd(process.pid, fd)).toMatchObject({ kind: 'null', target: '/dev/null' });
    } finally {
      closeSync(fd);
    }
  });
  test('/dev/ptmx is a tty by its device number', () => {
    const fd = openSync('/dev/ptmx', 'r');
    try {
      const identity = identifyFd('self', fd);
      expect(identity.kind).toBe('tty');
      expect(identity.inheritKey).toBe(`tty[${statSync('/dev/ptmx').rdev.toString(16)}:${statSync(`/proc/self/fd/${fd}`).dev.toString(16)}]`);
    } finally {
      closeSync(fd);
    }
  });
});
