/** Fakes for unit tests of the supervisor, the dump and the restore paths: a log that keeps its events, the system calls of an init, a controllable promise. */
import { pino, type Logger } from 'pino';
import type { SupervisorPorts } from '../../src/init/supervisor.js';
import type { ProcEntry } from '../../src/init/processes.js';
import type { ReapedChild } from '../../src/native/index.js';

export interface LoggedEvent {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface CapturedLog {
  readonly log: Logger;
  readonly events: LoggedEvent[];
  /** The events with this message. */
  named(msg: string): LoggedEvent[];
  /** Messages logged at warn (40) or above. */
  problems(): string[];
}

export function captureLog(): CapturedLog {
  const events: LoggedEvent[] = [];
  const log = pino({ level: 'debug', base: null, timestamp: false }, { write: (line: string) => void events.push(JSON.parse(line) as LoggedEvent) });
  return {
    log,
    events,
    named: (msg) => events.filter((event) => event.msg === msg),
    problems: () => events.filter((event) => event.level >= 40).map((event) => event.msg),
  };
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  let reject: (error: unknown) => void = () => undefined;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback run (a few macrotask turns). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

export interface FakeSystem {
  readonly ports: SupervisorPorts;
  /** Signals sent, as [target, signal]. */
  readonly kills: [number, NodeJS.Signals | number][];
  /** Exit codes stasis exited with. */
  readonly exits: number[];
  /** The process table leftovers are read from (children of process.pid are stasis's). */
  table: ProcEntry[];
  /** Makes kill throw for a target: e.g. an EPERM. */
  failKill: (pid: number) => NodeJS.ErrnoException | undefined;
  /** A signal arrives at stasis. */
  send(signal: NodeJS.Signals): void;
  /** A child exits: SIGCHLD, and the reaper finds it. */
  childExits(child: ReapedChild): void;
}

export function fakeSystem(): FakeSystem {
  const handlers = new Map<string, () => void>();
  const reapable: ReapedChild[] = [];
  const system: FakeSystem = {
    kills: [],
    exits: [],
    table: [],
    failKill: () => undefined,
    ports: {
      prepare: () => undefined,
      onSignal: (signal, handler) => void handlers.set(signal, handler),
      kill: (pid, signal) => {
        const error = system.failKill(pid);
        if (error) throw error;
        system.kills.push([pid, signal]);
        if (signal === 'SIGKILL') system.table = system.table.filter((entry) => entry.pid !== pid);
      },
      reap: () => reapable.splice(0),
      processTable: () => system.table,
      exit: (code): never => {
        system.exits.push(code);
        return undefined as never;
      },
    },
    send: (signal) => handlers.get(signal)?.(),
    childExits: (child) => {
      reapable.push(child);
      handlers.get('SIGCHLD')?.();
    },
  };
  return system;
}

export function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`kill ${code}`), { code });
}
