import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { clientChain, parsePeerStat, peerEnded, startControlServer } from '../../src/control.js';

describe('which client processes stasis waits for', () => {
  const stat = (state: string, ppid: number, start: string): string =>
    `42 (node (hook) x) ${state} ${ppid} 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 7 0 ${start} 1000 50 18446744073709551615`;

  test('/proc/PID/stat: state, parent and start time, whatever the command name', () => {
    expect(parsePeerStat(stat('S', 7, '987654'))).toEqual({ state: 'S', ppid: 7, start: '987654' });
    expect(parsePeerStat('42 (cut')).toBeUndefined();
  });

  test('a client has ended once it is gone, a zombie, or its PID belongs to a newer process', () => {
    const peer = { pid: 42, start: '100' };
    expect(peerEnded(peer, { state: 'S', ppid: 0, start: '100' })).toBe(false);
    expect(peerEnded(peer, { state: 'R', ppid: 0, start: '100' })).toBe(false);
    expect(peerEnded(peer, { state: 'Z', ppid: 0, start: '100' })).toBe(true);
    expect(peerEnded(peer, undefined)).toBe(true);
    expect(peerEnded(peer, { state: 'S', ppid: 0, start: '555' })).toBe(true);
  });

  const table = (entries: Record<number, [ppid: number, start: string]>) => (pid: number) => {
    const entry = entries[pid];
    return entry === undefined ? undefined : { state: 'S', ppid: entry[0], start: entry[1] };
  };

  test('a hook: the client and its shell, up to the process that entered the namespace (parent 0)', () => {
    expect(clientChain(30, 1, table({ 30: [29, 'c'], 29: [0, 's'] }))).toEqual([
      { pid: 30, start: 'c' },
      { pid: 29, start: 's' },
    ]);
  });

  test("a client in the app's own tree (below stasis): the client alone", () => {
    expect(clientChain(30, 1, table({ 30: [20, 'c'], 20: [10, 'sh'], 10: [1, 'app'] }))).toEqual([{ pid: 30, start: 'c' }]);
  });

  test('outside our PID namespace (PID 0), or already gone: nothing to wait for', () => {
    expect(clientChain(0, 1, table({}))).toEqual([]);
    expect(clientChain(30, 1, table({}))).toEqual([]);
  });
});

function stateOf(pid: number | undefined): string | undefined {
  try {
    return parsePeerStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.state;
  } catch {
    return undefined;
  }
}

describe('the control socket as stasis exits', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  // A client that closes its socket as soon as it has the answer, then runs on for a while
  // (as a hook's shell does, or Node while it tears down) before it exits 0.
  const CLIENT = `const net = require('node:net');
const socket = net.connect(process.argv[1], () => socket.write('{"op":"checkpoint"}\\n'));
socket.on('data', (chunk) => { process.stdout.write(chunk); socket.destroy(); setTimeout(() => process.exit(0), 400); });`;

  test('close() returns only after the answered client process has exited, not when its socket closed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stasis-control-'));
    dirs.push(dir);
    const path = join(dir, 'control.sock');
    const server = await startControlServer(path, async () => ({ ok: false, error: 'test' }), pino({ level: 'silent' }));
    expect(server).not.toBeNull();
    const client = spawn(process.execPath, ['-e', CLIENT, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exit = new Promise<number | null>((resolve) => client.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => client.stdout.once('data', () => resolve()));
    await server?.close();
    // exited: a zombie until the test's libuv reaps it, or gone already
    expect(['Z', undefined]).toContain(stateOf(client.pid));
    expect(await exit).toBe(0);
  });
});
