import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { openSync, closeSync } from 'node:fs';
import invariant from 'tiny-invariant';
import { libuvChildren, ownByLibuv, releaseFromLibuv } from '../children.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { native, type ReapedChild } from '../native/index.js';
import { FORWARDED_SIGNALS, signalName } from '../signals.js';
import { identifyFd, passStdin } from '../stdio.js';
import { finalExitCode, rewriteSignal, spawnFailureCode, type ExitStatus } from './exit.js';
import { descendantsOf, isAlive, readProcTree, signalEach, type Kill, type ProcEntry } from './processes.js';

export interface AppHandle {
  readonly pid: number;
  /** 'spawned': libuv's child, its exit comes from libuv; 'restored': criu's sibling, reaped natively. */
  readonly kind: 'spawned' | 'restored';
}

/** What the supervisor does to the system; tests pass fakes. */
export interface SupervisorPorts {
  /** Names the process `stasis` (ps, top), closes inherited fds above 2 and, when asked, makes it a child subreaper. */
  readonly prepare: (subreaper: boolean) => void;
  readonly onSignal: (signal: NodeJS.Signals, handler: () => void) => void;
  readonly kill: Kill;
  /** waitpid(WNOHANG) every child but `skip` (libuv's own). */
  readonly reap: (skip: readonly number[]) => ReapedChild[];
  /** This process and every process below it (enough for descendantsOf(process.pid)). */
  readonly processTable: () => ProcEntry[];
  readonly exit: (code: number) => never;
}

export const systemPorts: SupervisorPorts = {
  prepare: (subreaper) => {
    native().setName('stasis');
    native().cloexecFrom3();
    if (process.pid !== 1 && subreaper) native().setChildSubreaper();
  },
  onSignal: (signal, handler) => void process.on(signal, handler),
  kill: (pid, signal) => process.kill(pid, signal),
  reap: (skip) => native().reap(skip),
  processTable: () => readProcTree(process.pid),
  exit: (code) => process.exit(code),
};

/** Releases a hold taken with holdSignals; calling it again does nothing. */
export type Release = () => void;

const REAP_INTERVAL_MS = 1000;

/**
 * The init loop: forwards signals to the app, reaps every child that is not libuv's,
 * and ends stasis with the app's exit status once the app is gone and the
 * processes left behind had their grace period.
 */
export class Supervisor {
  private app: AppHandle | null = null;
  private readonly adopted: Promise<AppHandle>;
  private resolveAdopted: (app: AppHandle) => void = () => undefined;
  /** Signals that arrive while no app runs or a hold is in force; delivered afterwards, in order. */
  private queued: number[] = [];
  private readonly holds = new Set<Release>();
  /** Called once the last hold is released (an app exit waits for the dump that holds). */
  private unheld: (() => void)[] = [];
  private finishing = false;
  /** Asked once the app has exited and no hold is in force: did stasis end it on purpose? */
  private endedOnPurpose: () => boolean = () => false;
  /** SIGCHLD does the reaping; this timer reaps too, and keeps the event loop alive while a restored app (no libuv handle) runs. */
  private reapTimer: NodeJS.Timeout | null = null;
  /** Signals stasis handles itself instead of forwarding (the dump signal, SIGTERM with checkpoint-on-term). */
  private readonly intercepted = new Map<number, () => void>();
  /** Run before exiting (e.g. closing the control socket). */
  private readonly cleanups: (() => Promise<void>)[] = [];
  /** Children reaped while no app was adopted: a restored app can die before criu has even returned. */
  private readonly reapedEarly = new Map<number, ExitStatus>();

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly ports: SupervisorPorts = systemPorts,
  ) {
    this.adopted = new Promise((resolve) => (this.resolveAdopted = resolve));
  }

  /** Installs the signal handlers and the reaper; call before anything is spawned. */
  start(): void {
    this.ports.prepare(this.config.subreaper);
    for (const signal of FORWARDED_SIGNALS) {
      this.ports.onSignal(signalName(signal) as NodeJS.Signals, () => this.onSignal(signal));
    }
    this.ports.onSignal('SIGCHLD', () => this.reapNow());
    this.reapTimer = setInterval(() => this.reapNow(), REAP_INTERVAL_MS);
  }

  get appPid(): number | null {
    return this.app?.pid ?? null;
  }

  /** Resolves with the app once one is adopted (at once if it is). */
  whenAdopted(): Promise<AppHandle> {
    return this.adopted;
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
    invariant(this.app === null, 'an app is adopted once');
    this.app = app;
    this.resolveAdopted(app);
    const early = this.reapedEarly.get(app.pid);
    this.reapedEarly.clear();
    if (app.kind === 'restored' && early !== undefined) {
      this.onAppExit(early);
      return;
    }
    this.flushQueue();
  }

  /**
   * Holds signals meant for the app (queued, delivered in order on release) until the
   * returned function is called: a dump must not see the app get SIGTERM half-way. An
   * app exit meanwhile is settled only after the release, so the exit code can tell a
   * dump that ended the app from a crash.
   */
  holdSignals(): Release {
    const release: Release = () => {
      if (!this.holds.delete(release) || this.holds.size > 0) return;
      this.flushQueue();
      for (const resume of this.unheld.splice(0)) resume();
    };
    this.holds.add(release);
    return release;
  }

  /** `check` says, once the app is gone, whether stasis ended it on purpose (then stasis exits 0). */
  decideEndedOnPurpose(check: () => boolean): void {
    this.endedOnPurpose = check;
  }

  /** Makes stasis handle `signal` with `handler` instead of forwarding it. */
  intercept(signal: number, handler: () => void): void {
    this.intercepted.set(signal, handler);
  }

  onExit(cleanup: () => Promise<void>): void {
    this.cleanups.push(cleanup);
  }

  private onSignal(signal: number): void {
    const handler = this.intercepted.get(signal);
    if (handler && !this.finishing) {
      this.log.info({ signal: signalName(signal) }, 'signal handled by stasis');
      handler();
      return;
    }
    if (this.app === null || this.holds.size > 0) {
      this.queued.push(signal);
      this.log.debug({ signal: signalName(signal) }, 'signal queued');
      return;
    }
    this.forward(signal);
  }

  private flushQueue(): void {
    if (this.app === null || this.holds.size > 0) return;
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
      this.ports.kill(target, signal);
      this.log.debug({ signal: signalName(signal), target }, 'signal forwarded');
    } catch (error) {
      const fields = { signal: signalName(signal), target, err: (error as Error).message };
      // ESRCH: the app is exiting, its exit status follows; anything else means the app never gets the signal
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') this.log.debug(fields, 'signal not delivered: the app is gone');
      else this.log.warn(fields, 'signal not delivered');
    }
  }

  reapNow(): ReapedChild[] {
    const reaped = this.ports.reap(libuvChildren());
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
    const settle = (): void => void this.finish(finalExitCode(status, this.config.remapExit, this.endedOnPurpose()));
    // The app may die during a dump that holds signals: an exit-mode dump kills the
    // stopped tree itself once the generation is committed, or the app crashed. Only
    // the dump's outcome tells which, so the exit code waits for the release.
    if (this.holds.size > 0) this.unheld.push(settle);
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
    if (this.reapTimer) clearInterval(this.reapTimer);
    for (const cleanup of this.cleanups) {
      await cleanup().catch((error: unknown) => this.log.warn({ err: (error as Error).message }, 'a cleanup before exiting failed'));
    }
    this.log.info({ exit_code: code }, 'exiting');
    this.ports.exit(code);
  }

  /**
   * Live processes below stasis other than libuv's own children (criu runs); reaps zombies
   * on the way. The table is read before reaping: a child that is already dead in it is
   * reaped here, so an empty answer never leaves a zombie behind.
   */
  private leftovers(): number[] {
    const table = this.ports.processTable();
    this.reapNow();
    const mine = new Set(libuvChildren());
    return descendantsOf(process.pid, table)
      .filter((entry) => isAlive(entry) && !mine.has(entry.pid))
      .map((entry) => entry.pid);
  }

  private killAll(pids: readonly number[], signal: NodeJS.Signals): void {
    const failures = signalEach(pids, signal, this.ports.kill);
    if (failures.length > 0) this.log.warn({ signal, failures: failures.slice(0, 20) }, 'cannot signal some processes left behind');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
