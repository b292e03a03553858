/** A criu and a process table that exist only in a unit test: dumps write small images, restores write a pidfile. */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CheckpointContext } from '../../src/checkpoint/context.js';
import { CURRENT_LINK } from '../../src/checkpoint/layout.js';
import type { CheckpointPorts } from '../../src/checkpoint/ports.js';
import { loadConfig } from '../../src/config.js';
import type { CriuRun, RunCriuOptions } from '../../src/criu/run.js';
import type { ProcEntry } from '../../src/init/processes.js';

export const APP_PID = 4242;
export const RESTORED_PID = 10001;

export interface CriuCall {
  readonly args: readonly string[];
  readonly options: RunCriuOptions;
}

export interface FakeCriu {
  readonly ports: CheckpointPorts;
  readonly calls: CriuCall[];
  /** Signals sent to the app's tree, with whether a generation was current at that moment. */
  readonly signals: { readonly pid: number; readonly signal: NodeJS.Signals; readonly committed: boolean }[];
  readonly kills: [number, NodeJS.Signals | number][];
  /** Set: appending to a restore-attempt record throws it. */
  appendError: Error | undefined;
  alive: boolean;
  table: ProcEntry[];
  /** The processes that otherUsers reports as another user's (pid -> uid). */
  otherUids: Map<number, number>;
  /** What the next criu runs do; the default succeeds like criu does. */
  behave: (call: CriuCall) => CriuRun | Promise<CriuRun>;
}

export function argAfter(args: readonly string[], flag: string): string {
  const value = args[args.indexOf(flag) + 1];
  if (value === undefined) throw new Error(`no ${flag} in ${args.join(' ')}`);
  return value;
}

/** What a real criu leaves behind when it works: images for a dump, the pidfile for a restore. */
export function succeed(call: CriuCall): CriuRun {
  const images = argAfter(call.args, '--images-dir');
  if (call.args[0] === 'dump') {
    writeFileSync(join(images, 'inventory.img'), 'inventory');
    writeFileSync(join(images, 'pstree.img'), 'pstree');
    writeFileSync(join(images, 'pages-1.img'), Buffer.alloc(4096));
  } else if (call.args[0] === 'restore') {
    writeFileSync(argAfter(call.args, '--pidfile'), `${RESTORED_PID}\n`);
  }
  writeFileSync(call.options.logPath, 'criu log\n');
  return { ok: true, exitCode: 0, durationMs: 3, errors: [] };
}

/** A criu that fails with `errors` in its log. */
export function fail(errors: readonly string[], extra: Partial<CriuRun> = {}): (call: CriuCall) => CriuRun {
  return (call) => {
    writeFileSync(call.options.logPath, `${errors.join('\n')}\n`);
    return { ok: false, exitCode: 1, durationMs: 3, errors: [...errors], ...extra };
  };
}

export function fakeCriu(dir: string): FakeCriu {
  const fake: FakeCriu = {
    calls: [],
    signals: [],
    kills: [],
    appendError: undefined,
    alive: true,
    table: [],
    otherUids: new Map(),
    behave: succeed,
    ports: {
      runCriu: async (_criu, args, options) => {
        const call = { args: [...args], options };
        fake.calls.push(call);
        return fake.behave(call);
      },
      probeLazy: async () => ({ ok: false, reason: 'not in unit tests' }),
      startLazyDaemon: async () => ({ errors: ['not in unit tests'] }),
      processAlive: () => fake.alive,
      processTable: () => fake.table,
      signalTree: (pid, signal) => {
        fake.signals.push({ pid, signal, committed: existsSync(join(dir, CURRENT_LINK)) });
        return [];
      },
      kill: (pid, signal) => void fake.kills.push([pid, signal]),
      identifyStdio: () => [{ fd: 1, kind: 'pipe', target: 'pipe:[1234]', inheritKey: 'pipe:[1234]' }],
      otherUsers: (pids) => pids.flatMap((pid) => {
        const uid = fake.otherUids.get(pid);
        return uid === undefined ? [] : [{ pid, uid }];
      }),
      appendFile: async (path, text) => {
        if (fake.appendError) throw fake.appendError;
        await appendFile(path, text);
      },
    },
  };
  return fake;
}

export function checkpointContext(dir: string, log: Logger, env: Record<string, string> = {}): CheckpointContext {
  const config = loadConfig({ STASIS_DIR: dir, ...env });
  return { config, dir, log, criu: { path: '/fake/criu', version: '4.1.1' }, unprivileged: false, argv: ['app', '--serve'] };
}

export function tempCheckpointDir(): string {
  return mkdtempSync(join(tmpdir(), 'stasis-unit-'));
}
