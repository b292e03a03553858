import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { openSync, closeSync } from 'node:fs';
import invariant from 'tiny-invariant';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { native, type ReapedChild } from '../native/index.js';
import { FORWARDED_SIGNALS, signalName } from '../signals.js';
import { identifyFd, passStdin } from '../stdio.js';
import { libuvChildren, ownByLibuv, releaseFromLibuv } from '../children.js';
import { exitCodeFor, rewriteSignal, spawnFailureCode, type ExitStatus } from './exit.js';
import { descendantsOf, isAlive, readProcTable } from './processes.js';

export interface AppHandle {
  readonly pid: number;
  /** 'spawned': libuv's child, its exit comes from libuv; 'restored': criu's sibling, reaped natively. */
  readonly kind: 'spawned' | 'restored';
}

const REAP_INTERVAL_MS = 1000;

/**
 * The init loop: forwards signals to the app, reaps every child that is not libuv's,
 * and ends stasis with the app's exit status once the app is gone and the
 * processes left behind had their grace period.
 */
export class Supervisor {
  private app: AppHandle | null = null;
  /** Signals that arrive while no app runs or a dump holds them; delivered afterwards, in order. */
  private queued: number[] = [];
  private holds = 0;
  private busy: Promise<unknown> | null = null;
  private finishing = false;
  /** Set when a committed dump ended the app on purpose: stasis then exits 0. */
  private appEndedByDump = false;
  private keepAlive: NodeJS.Timeout | null = null;
  /** Signals stasis handles itself instead of forwarding (the dump signal, SIGTERM with checkpoint-on-term). */
  private readonly intercepted = new Map<number, () => void>();
  /** Run before exiting (e.g. closing the control socket). */
  private readonly cleanups: (() => Promise<void>)[] = [];
  /** Children reaped while no app was adopted: a restored app can die before criu has even returned. */
  private readonly reapedEarly = new Map<number, ExitStatus>();

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly exit: (code: number) => never = (code) => process.exit(code),
  ) {}

  /** Installs the signal handlers and the reaper; call before anything is spawned. */
  start(): void {
    native().cloexecFrom3();
    if (process.pid !== 1 && this.config.subreaper) native().setChildSubreaper();
    for (const signal of FORWARDED_SIGNALS) {
      process.on(signalName(signal), () => this.onSignal(signal));
    }
    process.on('SIGCHLD', () => this.reapNow());
    // Holds the event loop open while a restored app (not a libuv handle) runs.
    this.keepAlive = setInterval(() => this.reapNow(), REAP_INTERVAL_MS);
  }

  get appPid(): number | null {
    return this.app?.pid ?? null;
  }

  /** Starts CMD fresh: own session, fds 0-2 only, stdin passed through only when it is a pipe or tty. */
  spawnApp(argv: readonly string[]): void {
    invariant(argv.length > 0 && this.app === null, 'spawnApp needs a command and no running app');
    const [file, ...args] = argv as [string, ...string[]];
    const stdinFd = passStdin(identifyFd('self', 0)) ? 0 : openSync('/dev/null', 'r');
    const child = spawn(file, args, { detached: true, stdio: [stdinFd, 'inherit', 'inherit'] });
    if (stdinFd !== 0) closeSync(stdinFd);
    if (child.pid === undefined) {
      child.once('error', (error: NodeJS.ErrnoException) => {
        const code = spawnFailureCode(error.code);
        this.log.error({ err: error.message, command: argv, exit_code: code }, 'cannot execute the app');
        void this.finish(code);
      });
      return;
    }
    ownByLibuv(child.pid);
    this.log.info({ pid: child.pid, command: argv }, 'app started');
    child.once('exit', (code, signal) => {
      releaseFromLibuv(child.pid);
      this.onAppExit({ code, signal: signal === null ? null : constants.signals[signal] });
    });
    this.adopt({ pid: child.pid, kind: 'spawned' });
  }

  /** Makes `app` the process that gets signals and whose exit ends stasis. */
  adopt(app: AppHandle): void {
    this.app = app;
    const early = this.reapedEarly.get(app.pid);
    this.reapedEarly.clear();
    if (app.kind === 'restored' && early !== undefined) {
      this.onAppExit(early);
      return;
    }
    this.flushQueue();
  }

  /**
   * Runs a dump (or anything that must not see signals forwarded meanwhile): signals
   * are queued while it runs and delivered afterwards. One task at a time; a second
   * caller gets the running task's promise.
   */
  exclusive<T>(task: () => Promise<T>): Promise<T> | Promise<unknown> {
    if (this.busy) return this.busy;
    this.holds++;
    const running = task().finally(() => {
      this.busy = null;
      this.holds--;
      this.flushQueue();
    });
    this.busy = running;
    return running;
  }

  get isBusy(): boolean {
    return this.busy !== null;
  }

  /** The next app death was caused by a committed dump in exit mode: stasis exits 0. */
  markEndedByDump(): void {
    this.appEndedByDump = true;
  }

  /** Makes stasis handle `signal` with `handler` instead of forwarding it. */
  intercept(signal: number, handler: () => void): void {
    this.intercepted.set(signal, handler);
  }

  onExit(cleanup: () => Promise<void>): void {
    this.cleanups.push(cleanup);
  }

  /** Resolves once no exclusive task (dump) runs. */
  async whenIdle(): Promise<void> {
    while (this.busy) await this.busy.catch(() => undefined);
  }

  private onSignal(signal: number): void {
    const handler = this.intercepted.get(signal);
    if (handler && !this.finishing) {
      this.log.info({ signal: signalName(signal) }, 'signal handled by stasis');
      handler();
      return;
    }
    if (this.app === null || this.holds > 0) {
      this.queued.push(signal);
      this.log.debug({ signal: signalName(signal) }, 'signal queued');
      return;
    }
    this.forward(signal);
  }

  private flushQueue(): void {
    if (this.app === null || this.holds > 0) return;
    const queued = this.queued;
    this.queued = [];
    for (const signal of queued) this.forward(signal);
  }

  forward(received: number): void {
    if (this.app === null || this.finishing) return;
    const signal = rewriteSignal(received, this.config.rewrite);
    if (signal === null) {
      this.log.debug({ signal: signalName(received) }, 'signal dropped by rewrite');
      return;
    }
    const target = this.config.signalGroup ? -this.app.pid : this.app.pid;
    try {
      process.kill(target, signal);
      this.log.debug({ signal: signalName(signal), target }, 'signal forwarded');
    } catch (error) {
      this.log.debug({ signal: signalName(signal), target, err: (error as Error).message }, 'signal not delivered');
    }
  }

  reapNow(): ReapedChild[] {
    const reaped = native().reap(libuvChildren());
    for (const child of reaped) {
      if (this.app?.kind === 'restored' && child.pid === this.app.pid) {
        this.onAppExit(child);
      } else {
        if (this.app === null && this.reapedEarly.size < 1024) this.reapedEarly.set(child.pid, child);
        this.log.debug({ pid: child.pid, code: child.code, signal: child.signal }, 'reaped');
      }
    }
    return reaped;
  }

  private onAppExit(status: ExitStatus): void {
    invariant(this.app !== null, 'app exit without an app');
    const pid = this.app.pid;
    this.log.info({ pid, code: status.code, signal: status.signal === null ? null : signalName(status.signal) }, 'app exited');
    const settle = (): void => {
      const code = this.appEndedByDump ? 0 : exitCodeFor(status, this.config.remapExit);
      void this.finish(code);
    };
    // A dump in exit mode kills the app before criu returns: wait for the dump's outcome.
    if (this.busy) void this.busy.finally(settle);
    else settle();
  }

  /**
   * Ends stasis: SIGTERM to every process still below it, up to STASIS_GRACE for
   * them to go, SIGKILL for the rest, then exit with `code`.
   */
  async finish(code: number): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    const left = this.leftovers();
    if (left.length > 0) {
      this.log.info({ count: left.length, pids: left.slice(0, 20), grace_ms: this.config.grace }, 'sending SIGTERM to processes left behind');
      this.killAll(left, 'SIGTERM');
      const deadline = Date.now() + this.config.grace;
      while (this.leftovers().length > 0 && Date.now() < deadline) await sleep(20);
      const stubborn = this.leftovers();
      if (stubborn.length > 0) {
        this.log.warn({ count: stubborn.length, pids: stubborn.slice(0, 20) }, 'grace period over: sending SIGKILL');
        this.killAll(stubborn, 'SIGKILL');
        const killDeadline = Date.now() + 2000;
        while (this.leftovers().length > 0 && Date.now() < killDeadline) await sleep(10);
      }
    }
    if (this.keepAlive) clearInterval(this.keepAlive);
    for (const cleanup of this.cleanups) await cleanup().catch(() => undefined);
    this.log.info({ exit_code: code }, 'exiting');
    this.exit(code);
  }

  /**
   * Live processes below stasis other than libuv's own children (criu runs); reaps zombies
   * on the way. The table is read before reaping: a child that is already dead in it is
   * reaped here, so an empty answer never leaves a zombie behind.
   */
  private leftovers(): number[] {
    const table = readProcTable();
    this.reapNow();
    const mine = new Set(libuvChildren());
    return descendantsOf(process.pid, table)
      .filter((entry) => isAlive(entry) && !mine.has(entry.pid))
      .map((entry) => entry.pid);
  }

  private killAll(pids: readonly number[], signal: NodeJS.Signals): void {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
