/**
 * The PID-1 half of stasis, end to end: the real binary (STASIS_BIN, default bin/stasis)
 * as PID 1 of a new PID namespace and as a subreaper outside one. No checkpoints here
 * (STASIS_DIR is never set).
 */
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, test } from 'vitest';
import {
  BASE_ENV,
  ROOT,
  childrenOf,
  describe as show,
  fixture,
  mapLimit,
  poll,
  runStasis,
  sleep,
  startStasis,
  statOf,
  type StartOptions,
  type StasisProcess,
} from '../helpers/stasis.js';

const SIGNALS = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, ALRM: 14, TERM: 15, CONT: 18, WINCH: 28 } as const;
const QUIET = { STASIS_LOG_LEVEL: 'silent' };

const scratch = mkdtempSync(join(tmpdir(), 'stasis-e2e-'));
const running = new Set<StasisProcess>();
afterAll(async () => {
  await Promise.all([...running].map((handle) => handle.kill()));
  rmSync(scratch, { recursive: true, force: true });
});

let dirs = 0;
function freshDir(): string {
  const dir = join(scratch, `d${++dirs}`);
  mkdirSync(dir);
  return dir;
}

/** startStasis, killed at the end of the file if a test leaves it behind. */
function start(options: StartOptions): StasisProcess {
  const handle = startStasis(options);
  running.add(handle);
  void handle.result.finally(() => running.delete(handle)).catch(() => {});
  return handle;
}

function sh(script: string): string[] {
  return ['--', 'sh', '-c', script];
}

const MODES = [
  { mode: 'as PID 1 of a PID namespace', namespace: true },
  { mode: 'as a subreaper outside a namespace', namespace: false },
] as const;

describe.concurrent.each(MODES)('stasis $mode', ({ namespace }) => {
  test('exit codes 0-255 of the app pass through', { timeout: 600_000 }, async ({ expect }) => {
    // All 256 as PID 1 (the product's case); a spread of them as a subreaper (same code path, saves ~30 s of CPU).
    const codes = namespace ? Array.from({ length: 256 }, (_, i) => i) : [0, 1, 2, 3, 42, 100, 125, 126, 127, 128, 129, 130, 137, 143, 200, 254, 255];
    const results = await mapLimit(codes, 3, async (code) => {
      const result = await runStasis({ namespace, env: QUIET, args: sh(`exit ${code}`) });
      return { code, got: result.code, stderr: result.stderr };
    });
    expect(results.filter(({ code, got }) => code !== got)).toEqual([]);
  });

  test.for(['TERM', 'HUP', 'QUIT', 'KILL', 'USR1', 'INT'] as const)('the app killed by SIG%s: exit code 128+N', async (name, { expect }) => {
    // ulimit -c 0: no core file from QUIT.
    const result = await runStasis({ namespace, cwd: freshDir(), args: sh(`ulimit -c 0; kill -s ${name} $$; echo survived; exit 99`) });
    expect(result.code, show(result)).toBe(128 + SIGNALS[name]);
    expect(result.stdout).toBe('');
    expect(result.events.find((event) => event.msg === 'app exited')).toMatchObject({ code: null, signal: `SIG${name}` });
  });

  test('HUP INT QUIT USR1 USR2 WINCH CONT ALRM TERM sent to stasis reach the app', async ({ expect }) => {
    const stasis = start({ namespace, args: ['--', fixture('signals.sh')] });
    await stasis.waitFor('ready');
    const sent = ['HUP', 'INT', 'QUIT', 'USR1', 'USR2', 'WINCH', 'CONT', 'ALRM', 'TERM'] as const;
    for (const name of sent) {
      await stasis.signal(`SIG${name}`);
      await stasis.waitFor(name);
    }
    const result = await stasis.result;
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toBe(`ready\n${sent.join('\n')}\n`);
  });

  test('orphans are adopted by stasis and reaped: no zombie children remain', async ({ expect }) => {
    const count = 20;
    const stasis = start({ namespace, stdin: 'open', args: ['--', fixture('adopt.sh'), String(count)] });
    await stasis.waitFor((lines) => lines.filter((line) => line.startsWith('orphan ')).length === count);
    const stasisPid = await stasis.pid();
    const orphans = stasis.lines().filter((line) => line.startsWith('orphan '));
    // Their PPID as seen in their own namespace: stasis is 1 there.
    const expectedPpid = namespace ? 1 : stasisPid;
    expect(orphans.map((line) => Number(line.split(' ')[2]))).toEqual(Array(count).fill(expectedPpid));
    // Once the orphans have exited, only the app is left below stasis, and nothing is a zombie.
    const below = (): string[] => childrenOf(stasisPid).map((pid) => statOf(pid)).map((child) => (child?.state === 'Z' ? `zombie ${child.pid}` : String(child?.comm)));
    const children = await poll('the orphans to be reaped', () => (below().length === 1 ? below() : undefined), 15_000).catch(() => below());
    expect(children).toEqual(['adopt.sh']);
    stasis.child.stdin?.end();
    const result = await stasis.result;
    expect(result.code, show(result)).toBe(0);
  });

  test('a process left behind gets SIGTERM before stasis exits, and stasis does not wait out the grace period', async ({ expect }) => {
    const stasis = start({ namespace, env: { STASIS_GRACE: '30s' }, args: ['--', fixture('leftover.sh'), 'term'] });
    await stasis.waitFor('app exits');
    const appExited = performance.now();
    const result = await stasis.result;
    expect(result.code, show(result)).toBe(7);
    expect(result.stdout).toMatch(/^leftover \d+\napp exits\nleftover got TERM\n$/);
    expect(result.endedAt - appExited).toBeLessThan(10_000);
    const sigterm = result.events.findIndex((event) => event.msg === 'sending SIGTERM to processes left behind');
    expect(sigterm).toBeGreaterThan(-1);
    expect(result.events.findIndex((event) => event.msg === 'grace period over: sending SIGKILL')).toBe(-1);
    if (!namespace) expect(statOf(Number(/^leftover (\d+)/.exec(result.stdout)?.[1]))).toBeUndefined();
  });

  test('a process left behind that ignores SIGTERM is killed after STASIS_GRACE', async ({ expect }) => {
    const grace = 1000;
    const stasis = start({ namespace, env: { STASIS_GRACE: `${grace}ms` }, args: ['--', fixture('leftover.sh'), 'ignore'] });
    await stasis.waitFor('app exits');
    const appExited = performance.now();
    const result = await stasis.result;
    expect(result.code, show(result)).toBe(7);
    // Wall clock from the app's last line to stasis's end (generous: the machine may be busy) ...
    const waited = result.endedAt - appExited;
    expect(waited).toBeGreaterThanOrEqual(grace * 0.7);
    expect(waited).toBeLessThan(grace + 10_000);
    // ... and stasis's own clock from SIGTERM to SIGKILL.
    const at = (msg: string): number => result.events.find((event) => event.msg === msg)?.time ?? Number.NaN;
    expect(at('grace period over: sending SIGKILL') - at('sending SIGTERM to processes left behind')).toBeGreaterThanOrEqual(grace);
    if (!namespace) {
      // Outside a namespace nobody else would kill it: it must be gone.
      const leftover = Number(/^leftover (\d+)/.exec(result.stdout)?.[1]);
      expect(leftover).toBeGreaterThan(1);
      expect(statOf(leftover)).toBeUndefined();
    }
  });

  test('exec failures: 127 when the command is not found, 126 when it cannot be executed', async ({ expect }) => {
    const dir = freshDir();
    const script = join(dir, 'not-executable.sh');
    writeFileSync(script, '#!/bin/sh\nexit 0\n');
    chmodSync(script, 0o644);
    const cases = [
      [['/nonexistent/app'], 127],
      [['no-such-command-stasis-test'], 127],
      [[script], 126],
      [[dir], 126],
    ] as const;
    for (const [command, code] of cases) {
      const result = await runStasis({ namespace, args: ['--', ...command] });
      expect(result.code, `${command[0]}: ${show(result)}`).toBe(code);
      expect(result.events.find((event) => event.msg === 'cannot execute the app')).toMatchObject({ level: 50, exit_code: code });
    }
  });

  test('stdin: a socket passes through to the app', async ({ expect }) => {
    const data = 'hello\nworld\n';
    const result = await runStasis({ namespace, stdin: { socket: data }, args: sh('readlink /proc/self/fd/0; cat') });
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toMatch(/^socket:\[\d+\]\nhello\nworld\n$/);
  });

  test('stdin: a pipe passes through to the app', async ({ expect }) => {
    const result = await runStasis({ namespace, stdin: { pipe: 'through a pipe\n' }, args: sh('readlink /proc/self/fd/0; cat') });
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toMatch(/^pipe:\[\d+\]\nthrough a pipe\n$/);
  });

  test('stdin: a terminal passes through to the app', async ({ expect }) => {
    const result = await runStasis({ namespace, stdin: 'tty', env: QUIET, args: ['--', 'readlink', '/proc/self/fd/0'] });
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toMatch(/^\/dev\/pts\/\d+\r?\n$/);
  });

  test('stdin: a regular file is not passed, the app reads /dev/null', async ({ expect }) => {
    const file = join(freshDir(), 'input.txt');
    writeFileSync(file, 'secret\n');
    const fd = openSync(file, 'r');
    try {
      const result = await runStasis({ namespace, stdin: { fd }, args: sh('readlink /proc/self/fd/0; cat') });
      expect(result.code, show(result)).toBe(0);
      expect(result.stdout).toBe('/dev/null\n');
    } finally {
      closeSync(fd);
    }
  });

  test('the working directory is kept', async ({ expect }) => {
    const dir = freshDir();
    const result = await runStasis({ namespace, cwd: dir, args: ['--', 'readlink', '/proc/self/cwd'] });
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toBe(`${realpathSync(dir)}\n`);
  });

  test('the environment reaches the app unchanged', async ({ expect }) => {
    const dir = realpathSync(freshDir());
    const env = {
      // bin/stasis is a dash script, and dash exports PWD: give it the value it would set.
      PWD: dir,
      PLAIN: 'value',
      EMPTY: '',
      EQUALS: 'a=b=c',
      MULTILINE: 'line 1\nline 2\n',
      UNICODE: 'h\u00e9llo \u2603',
      SPACES: '  both ends  ',
      LONG: 'x'.repeat(20_000),
      STASIS_GRACE: '3s',
      STASIS_APP_VERSION: 'v1',
    };
    const result = await runStasis({ namespace, cwd: dir, env, args: ['--', 'env', '-0'] });
    expect(result.code, show(result)).toBe(0);
    const seen = Object.fromEntries(
      result.stdout
        .split('\0')
        .slice(0, -1)
        .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
    );
    expect(seen).toEqual({ ...BASE_ENV, ...env });
  });

  test('the app has only fds 0-2 (even when stasis inherits fds 3 and 40) and leads its own session and process group', async ({ expect }) => {
    const stasis = start({ namespace, extraFds: [3, 40], env: QUIET, args: ['--', 'sleep', '30'] });
    const stasisPid = await stasis.pid();
    for (const fd of [3, 40]) expect(readlinkSync(`/proc/${stasisPid}/fd/${fd}`)).toMatch(/^socket:\[\d+\]$/);
    const app = await stasis.appPid('sleep');
    const stat = statOf(app) as NonNullable<ReturnType<typeof statOf>>;
    // sleep's dynamic loader opens ld.so.cache and libc as fd 3 for a moment: wait for it to settle;
    // an fd that stasis leaked would stay
    const fds = (): number[] => readdirSync(`/proc/${app}/fd`).map(Number).sort((a, b) => a - b);
    await poll(`the app's fds to be 0-2 (now ${fds().join(',')})`, () => (fds().join(',') === '0,1,2' ? true : undefined), 5000).catch(() => undefined);
    expect(fds()).toEqual([0, 1, 2]);
    expect(stat.session).toBe(app);
    expect(stat.pgrp).toBe(app);
    expect(statOf(stasisPid)?.session).not.toBe(app);
    await stasis.signal('SIGTERM');
    const result = await stasis.result;
    expect(result.code, show(result)).toBe(128 + SIGNALS.TERM);
  });

  test.for([true, false])('STASIS_SIGNAL_GROUP=%s: signals go to the whole process group only when set', async (group, { expect }) => {
    const stasis = start({ namespace, env: { STASIS_SIGNAL_GROUP: String(group) }, args: ['--', fixture('group.sh')] });
    await stasis.waitFor((lines) => lines.includes('app ready') && lines.includes('child ready'));
    await stasis.signal('SIGHUP');
    await stasis.waitFor('app HUP');
    if (group) await stasis.waitFor('child HUP');
    // The app relays USR2 to the child: once the child has printed that, a HUP sent to it earlier would show.
    await stasis.signal('SIGUSR2');
    await stasis.waitFor('child USR2');
    expect(stasis.lines().includes('child HUP')).toBe(group);
    await stasis.signal('SIGTERM');
    const result = await stasis.result;
    expect(result.code, show(result)).toBe(0);
  });

  test('STASIS_REWRITE rewrites (TERM:QUIT) and drops (USR1:0) signals', async ({ expect }) => {
    const stasis = start({ namespace, env: { STASIS_REWRITE: 'TERM:QUIT,USR1:0' }, args: ['--', fixture('signals.sh'), 'ALRM'] });
    await stasis.waitFor('ready');
    await stasis.signal('SIGUSR1');
    await stasis.signal('SIGHUP');
    await stasis.waitFor('HUP');
    await stasis.signal('SIGTERM');
    await stasis.waitFor('QUIT');
    await stasis.signal('SIGALRM');
    const result = await stasis.result;
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toBe('ready\nHUP\nQUIT\nALRM\n');
  });

  test('STASIS_REMAP_EXIT remaps exit codes, including 128+N; others pass', async ({ expect }) => {
    const env = { ...QUIET, STASIS_REMAP_EXIT: '143,3:7' };
    const [killed, three, five] = await Promise.all([
      runStasis({ namespace, env, args: sh('kill -s TERM $$') }),
      runStasis({ namespace, env, args: sh('exit 3') }),
      runStasis({ namespace, env, args: sh('exit 5') }),
    ]);
    expect(killed.code).toBe(0);
    expect(three.code).toBe(7);
    expect(five.code).toBe(5);
  });

  test('a bad variable exits 2 naming the variable, its value and the allowed values, and starts nothing', async ({ expect }) => {
    const marker = join(freshDir(), 'started');
    const result = await runStasis({ namespace, env: { STASIS_GRACE: 'soon' }, args: ['--', 'touch', marker] });
    expect(result.code, show(result)).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('STASIS_GRACE="soon"');
    expect(result.stderr).toMatch(/expected .*500ms.*5s/);
    expect(existsSync(marker)).toBe(false);
  });

  test("the app's stdout is passed byte for byte; stasis logs JSON lines on stderr", async ({ expect }) => {
    const dir = freshDir();
    const bytes = Buffer.concat([Buffer.from([0, 255, 254, 13, 10, 27, 91, 48, 109, 0xc3, 0x28]), randomBytes(1 << 20), Buffer.from('no newline at the end')]);
    writeFileSync(join(dir, 'data'), bytes);
    const result = await runStasis({ namespace, cwd: dir, args: ['--', 'cat', 'data'] });
    expect(result.code, show(result)).toBe(0);
    expect(result.stdoutBytes.equals(bytes)).toBe(true);
    const lines = result.stderr.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const event = JSON.parse(line) as Record<string, unknown>;
      expect(event).toMatchObject({ name: 'stasis', level: expect.any(Number), time: expect.any(Number), msg: expect.any(String) });
    }
    expect(result.events.map((event) => event.msg)).toEqual(['app started', 'app exited', 'exiting']);
    expect(result.events[2]).toMatchObject({ level: 30, exit_code: 0 });
  });

  test("the app's stderr passes through beside stasis's JSON lines", async ({ expect }) => {
    const result = await runStasis({ namespace, args: sh('echo "app error" >&2; exit 4') });
    expect(result.code).toBe(4);
    const lines = result.stderr.split('\n').filter((line) => line !== '');
    expect(lines.filter((line) => !line.startsWith('{'))).toEqual(['app error']);
    expect(lines.filter((line) => line.startsWith('{')).length).toBe(result.events.length);
    expect(result.events.length).toBeGreaterThan(0);
  });

  test('STASIS_LOG_LEVEL: silent prints nothing, warn only problems, debug more than info', async ({ expect }) => {
    const [silent, silentFailure, warn, warnFailure, debug] = await Promise.all([
      runStasis({ namespace, env: { STASIS_LOG_LEVEL: 'silent' }, args: sh('exit 3') }),
      runStasis({ namespace, env: { STASIS_LOG_LEVEL: 'silent' }, args: ['--', '/nonexistent'] }),
      runStasis({ namespace, env: { STASIS_LOG_LEVEL: 'warn' }, args: sh('exit 3') }),
      runStasis({ namespace, env: { STASIS_LOG_LEVEL: 'warn' }, args: ['--', '/nonexistent'] }),
      runStasis({ namespace, env: { STASIS_LOG_LEVEL: 'debug', STASIS_GRACE: '0' }, args: sh('sleep 5 & exit 3') }),
    ]);
    expect([silent.code, silentFailure.code, warn.code, warnFailure.code, debug.code]).toEqual([3, 127, 3, 127, 3]);
    expect(silent.stderr).toBe('');
    expect(silentFailure.stderr).toBe('');
    expect(warn.stderr).toBe('');
    expect(warnFailure.events.map((event) => [event.level, event.msg])).toEqual([[50, 'cannot execute the app']]);
    expect(debug.events.some((event) => event.level === 20)).toBe(true);
    expect(debug.events.every((event) => event.level >= 20)).toBe(true);
  });

  test('SIGUSR1 to stasis reaches the app and does not open the Node inspector', async ({ expect }) => {
    const stasis = start({ namespace, args: ['--', fixture('signals.sh')] });
    await stasis.waitFor('ready');
    const stasisPid = await stasis.pid();
    await stasis.signal('SIGUSR1');
    await stasis.waitFor('USR1');
    await sleep(300);
    expect(listeningSockets(stasisPid)).toEqual([]);
    await expect(canConnect(9229)).resolves.toBe(false);
    await stasis.signal('SIGTERM');
    const result = await stasis.result;
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toBe('ready\nUSR1\nTERM\n');
    expect(result.stderr).not.toMatch(/Debugger|inspector|ws:\/\//i);
  });
});

describe.concurrent('stasis as PID 1 of a PID namespace', () => {
  test('100 double-forked orphans that exit leave no zombie in the namespace', async ({ expect }) => {
    const result = await runStasis({ namespace: true, env: QUIET, args: ['--', fixture('orphans-ns.sh'), '100'] });
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toBe('adopted 100\nzombies 0\n');
  });

  test('is PID 1 named stasis (/proc/1/comm, what ps and top show) and the app is its child', async ({ expect }) => {
    const result = await runStasis({ namespace: true, env: QUIET, args: sh('echo "$PPID"; tr "\\0" " " < /proc/1/cmdline; echo; cat /proc/1/comm') });
    expect(result.code, show(result)).toBe(0);
    const [ppid, cmdline, comm] = result.stdout.split('\n');
    expect(ppid).toBe('1');
    expect(cmdline).toMatch(/main\.js -- sh -c|stasis -- sh -c/);
    expect(comm).toBe('stasis');
  });
});

describe.concurrent('stasis outside a namespace', () => {
  test('STASIS_SUBREAPER=false: orphans are not adopted by stasis', async ({ expect }) => {
    const stasis = start({ namespace: false, stdin: 'open', env: { STASIS_SUBREAPER: 'false' }, args: ['--', fixture('adopt.sh'), '3'] });
    await stasis.waitFor((lines) => lines.filter((line) => line.startsWith('orphan ')).length === 3);
    const stasisPid = await stasis.pid();
    const ppids = stasis.lines().filter((line) => line.startsWith('orphan ')).map((line) => Number(line.split(' ')[2]));
    expect(ppids).toHaveLength(3);
    for (const ppid of ppids) expect(ppid).not.toBe(stasisPid);
    stasis.child.stdin?.end();
    expect((await stasis.result).code).toBe(0);
  });

  test('bad values of each kind (enum, number, bool, duration, signal, words, map) exit 2 naming the variable, value and allowed values, and start nothing', async ({ expect }) => {
    // Every option's bad values are covered by the unit tests; these check the wiring end to end.
    const bad: Record<string, readonly [string, RegExp]> = {
      STASIS_TCP: ['on', /established, close, off/],
      STASIS_KEEP: ['0', /1 to 1000/],
      STASIS_SUBREAPER: ['maybe', /true or false/],
      STASIS_GRACE: ['-1', /duration/],
      STASIS_DUMP_SIGNAL: ['KILL', /USR2.*none/],
      STASIS_CRIU_DUMP_OPTS: ["'open", /quotes/],
      STASIS_REWRITE: ['TERM', /FROM:TO/],
      STASIS_LOG_LEVEL: ['loud', /trace, debug, info, warn, error, fatal, silent/],
    };
    const dir = freshDir();
    const results = await mapLimit(Object.entries(bad), 3, async ([name, [value, allowed]]) => {
      const marker = join(dir, name);
      const result = await runStasis({ namespace: false, env: { [name]: value }, args: ['--', 'touch', marker] });
      return { name, value, allowed, result, started: existsSync(marker) };
    });
    for (const { name, value, allowed, result, started } of results) {
      expect(result.code, `${name}: ${show(result)}`).toBe(2);
      expect(result.stderr).toContain(`${name}=${JSON.stringify(value)} is not valid: expected`);
      expect(result.stderr).toMatch(allowed);
      expect(started, name).toBe(false);
    }
  });

  test('flags: a bad flag value names the flag; flags win over variables; usage errors exit 2', async ({ expect }) => {
    const marker = join(freshDir(), 'started');
    const [badFlag, flagWins, unknown, noCommand] = await Promise.all([
      runStasis({ namespace: false, args: ['--grace', 'soon', '--', 'touch', marker] }),
      runStasis({ namespace: false, env: { STASIS_REMAP_EXIT: '3:4', STASIS_LOG_LEVEL: 'bogus' }, args: ['--remap-exit', '3:5', '--log-level', 'silent', ...sh('exit 3')] }),
      runStasis({ namespace: false, args: ['--no-such-option', '--', 'touch', marker] }),
      runStasis({ namespace: false, args: [] }),
    ]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('--grace="soon" is not valid');
    expect(flagWins.code, show(flagWins)).toBe(5);
    expect(flagWins.stderr).toBe('');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--no-such-option');
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toMatch(/command/);
    expect(existsSync(marker)).toBe(false);
  });

  test('--version prints the version, --help lists the variables; both exit 0 and start nothing', async ({ expect }) => {
    const [version, help] = await Promise.all([runStasis({ namespace: false, args: ['--version'] }), runStasis({ namespace: false, args: ['--help'] })]);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(version.code).toBe(0);
    expect(version.stdout).toBe(`${pkg.version}\n`);
    expect(help.code).toBe(0);
    for (const name of ['STASIS_GRACE', 'STASIS_SIGNAL_GROUP', 'STASIS_REWRITE', 'STASIS_REMAP_EXIT', 'STASIS_SUBREAPER', 'STASIS_LOG_LEVEL']) expect(help.stdout).toContain(name);
    expect(version.events).toEqual([]);
    expect(help.events).toEqual([]);
  });

  test('--signal-group and --rewrite work as flags', async ({ expect }) => {
    const stasis = start({ namespace: false, args: ['--signal-group', '--rewrite', 'INT:HUP', '--', fixture('group.sh')] });
    await stasis.waitFor((lines) => lines.includes('app ready') && lines.includes('child ready'));
    await stasis.signal('SIGINT');
    await stasis.waitFor((lines) => lines.includes('app HUP') && lines.includes('child HUP'));
    await stasis.signal('SIGTERM');
    expect((await stasis.result).code).toBe(0);
  });

  test('STASIS_LOG_FORMAT=pretty: readable lines instead of JSON', async ({ expect }) => {
    const result = await runStasis({ namespace: false, env: { STASIS_LOG_FORMAT: 'pretty' }, args: sh('exit 0') });
    expect(result.code).toBe(0);
    expect(result.events).toEqual([]);
    expect(result.stderr).toMatch(/^\d\d:\d\d:\d\d\.\d{3} stasis INFO  app started pid=\d+ command=\["sh","-c","exit 0"\]$/m);
    expect(result.stderr).toMatch(/^\d\d:\d\d:\d\d\.\d{3} stasis INFO  exiting exit_code=0$/m);
  });
});

/** Listening TCP sockets (IPv4 or IPv6) held by process `pid`, as "address:port" in hex. */
function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1] as string);
    } catch {
      // closed meanwhile
    }
  }
  const listening: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileLines(`/proc/${pid}/net/${table}`).slice(1)) {
      const fields = line.trim().split(/\s+/);
      // sl local_address rem_address st ... inode is field 9
      if (fields[3] === '0A' && inodes.has(fields[9] as string)) listening.push(fields[1] as string);
    }
  }
  return listening;
}

function readFileLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n').filter((line) => line !== '');
  } catch {
    return [];
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}
