import type { Supervisor } from '../init/supervisor.js';
import type { Logger } from '../log.js';
import type { CheckpointContext } from './context.js';
import type { CheckpointState } from './controller.js';
import { join } from 'node:path';
import { dumpApp, type DumpOutcome, type DumpRequest, type Publish } from './dump.js';
import { generationName } from './layout.js';
import { systemPorts } from './ports.js';
import type { LazyEnd, LazyServing } from './lazy.js';

/** What the coordinator needs of the supervisor: the app's arrival, a signal hold, forwarding and the exit code. */
export type AppSupervisor = Pick<Supervisor, 'appPid' | 'whenAdopted' | 'holdSignals' | 'forward' | 'decideEndedOnPurpose' | 'onExit'>;

interface Run {
  readonly request: DumpRequest;
  readonly done: Promise<DumpOutcome>;
}

/**
 * idle; a dump run waiting for the app (requested before it runs), waiting for a lazy
 * restore to copy its last page in, dumping, or uploading its generation to the object
 * store (STASIS_STORE; in continue mode with the app running); ended: a committed
 * exit-mode dump ended the app and answers every later request.
 */
export type DumpState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'waiting-for-app' | 'waiting-for-lazy' | 'dumping' | 'uploading'; readonly run: Run }
  | { readonly kind: 'ended'; readonly outcome: DumpOutcome };

export interface CoordinatorOptions {
  /** `publish` is given in exit mode with a store: the dump uploads before it ends the app */
  readonly dump?: (context: CheckpointContext, appPid: number, request: DumpRequest, publish?: Publish) => Promise<DumpOutcome>;
  /** How long a dump request that arrives before the app runs waits for it (a restore of a big app takes seconds). */
  readonly appWaitMs?: number;
}

const APP_WAIT_MS = 10 * 60_000;

/**
 * The one owner of dumps: serialises requests (a request while a dump runs joins it),
 * lets a request made before the app runs wait for it, makes a dump of a lazily
 * restored app wait for its last page, holds the app's signals while criu works, and
 * once an exit-mode dump has ended the app answers later requests with that dump.
 * Requests never reject: a fault becomes a failed outcome.
 */
export class DumpCoordinator {
  private current: DumpState = { kind: 'idle' };
  private lazy: LazyServing | null = null;
  /** the dump requested while a continue-mode upload runs: it starts once the upload is done */
  private next: Promise<DumpOutcome> | null = null;
  private readonly dump: NonNullable<CoordinatorOptions['dump']>;
  private readonly appWaitMs: number;

  constructor(
    private readonly supervisor: AppSupervisor,
    /** A promise while criu's probe still runs (beside the restore); a request made meanwhile waits for it. */
    private checkpoints: CheckpointState | Promise<CheckpointState>,
    private readonly log: Logger,
    options: CoordinatorOptions = {},
  ) {
    this.dump = options.dump ?? ((context, pid, request, publish) => dumpApp(context, pid, request, systemPorts, publish));
    this.appWaitMs = options.appWaitMs ?? APP_WAIT_MS;
    supervisor.decideEndedOnPurpose(() => this.current.kind === 'ended');
  }

  get state(): DumpState {
    return this.current;
  }

  request(request: DumpRequest): Promise<DumpOutcome> {
    if (this.checkpoints instanceof Promise) {
      return this.checkpoints.then((settled) => {
        this.checkpoints = settled;
        return this.request(request);
      });
    }
    if (!this.checkpoints.enabled) {
      this.log.error({ reason: this.checkpoints.reason }, 'dump requested but checkpoints are off');
      return Promise.resolve({ ok: false, error: `checkpoints are off: ${this.checkpoints.reason}`, criuErrors: [] });
    }
    const current = this.current;
    if (current.kind === 'ended') {
      this.log.info({ reason: request.reason }, 'dump requested after the app was dumped and ended: answered with that dump');
      return Promise.resolve(current.outcome);
    }
    if (current.kind === 'uploading' && current.run.request.mode === 'continue') {
      // a new dump of the running app waits for the upload of the previous one
      this.log.info({ reason: request.reason }, 'dump requested during an upload: it starts once the upload is done');
      this.next ??= current.run.done.then(() => {
        this.next = null;
        return this.request(request);
      });
      return this.next;
    }
    if (current.kind !== 'idle') return current.run.done;
    return this.start(this.checkpoints.context, request);
  }

  /**
   * SIGTERM with STASIS_CHECKPOINT_ON_TERM: waits for a dump in progress, then dumps
   * in exit mode; if that fails, SIGTERM goes to the app so the pod still stops.
   */
  async dumpOnTerm(term: number): Promise<void> {
    for (let current = this.current; 'run' in current; current = this.current) await current.run.done;
    const outcome = await this.request({ mode: 'exit', reason: 'SIGTERM' });
    if (!outcome.ok) {
      this.log.warn({ error: outcome.error }, 'dump on SIGTERM failed; forwarding SIGTERM');
      this.supervisor.forward(term);
    }
  }

  /** STASIS_INTERVAL: a continue-mode dump every `ms`, skipped unless idle with an app fully restored. */
  startInterval(ms: number): void {
    const timer = setInterval(() => this.tick(), ms);
    this.supervisor.onExit(async () => clearInterval(timer));
  }

  tick(): void {
    if (this.current.kind !== 'idle' || this.supervisor.appPid === null || this.lazy !== null) {
      const fields = { state: this.current.kind, app: this.supervisor.appPid, lazy: this.lazy !== null };
      this.log.info(fields, 'interval checkpoint skipped: a dump or a lazy restore is running, or no app yet');
      return;
    }
    void this.request({ mode: 'continue', reason: 'interval' });
  }

  /**
   * The app comes from a lazy restore: dumps wait until every page is in, and stasis's
   * exit stops the daemon. Call before the supervisor adopts the app: the serving acts
   * on its end only once the app is adopted.
   */
  followLazyRestore(serving: LazyServing): void {
    this.lazy = serving;
    this.supervisor.onExit(() => serving.stop());
    void this.supervisor.whenAdopted().then(() => serving.adopted());
    void serving.done.then(() => {
      if (this.lazy === serving) this.lazy = null;
    });
  }

  private start(context: CheckpointContext, request: DumpRequest): Promise<DumpOutcome> {
    let settle: (outcome: DumpOutcome) => void = () => undefined;
    const run: Run = { request, done: new Promise((resolve) => (settle = resolve)) };
    // perform sets the state before its first await: a request right after this one joins it
    this.perform(context, run).then(settle, (error: unknown) => settle(this.fault(error)));
    return run.done;
  }

  private async perform(context: CheckpointContext, run: Run): Promise<DumpOutcome> {
    // Held from the start: signals queued while the app is restored reach it after the dump.
    let release = once(this.supervisor.holdSignals());
    try {
      const pid = this.supervisor.appPid ?? (await this.appToCome(run));
      if (pid === null) return { ok: false, error: 'no app is running', criuErrors: [] };
      if (this.lazy !== null) {
        // the last page may take minutes: the app gets its signals meanwhile
        release();
        this.current = { kind: 'waiting-for-lazy', run };
        this.log.info({ reason: run.request.reason }, 'dump waits until the lazy restore has copied every page in');
        const end = await this.lazy.done;
        if (end.kind === 'failed') return this.lazyFailed(end);
        release = once(this.supervisor.holdSignals());
      }
      this.current = { kind: 'dumping', run };
      const store = context.store;
      const publish: Publish | undefined =
        store &&
        ((local) => {
          this.current = { kind: 'uploading', run };
          return store.publish(local);
        });
      const outcome = await this.dump(context, pid, run.request, run.request.mode === 'exit' ? publish : undefined);
      if (outcome.ok && run.request.mode === 'exit') this.current = { kind: 'ended', outcome };
      if (!outcome.ok || run.request.mode === 'exit' || publish === undefined) return outcome;
      // continue mode: the app runs on (and gets its signals) while its generation uploads
      release();
      const uploaded = await publish({ generation: outcome.generation, path: join(context.dir, generationName(outcome.generation)) });
      return uploaded.ok ? { ...outcome, remote: uploaded.published } : { ok: false, error: uploaded.error, criuErrors: [] };
    } finally {
      if (this.current.kind !== 'ended') this.current = { kind: 'idle' };
      release();
    }
  }

  /**
   * A request that arrives while the app is still being restored or started (the
   * dump signal is handled from stasis's first moment on) waits for the app instead
   * of being dropped: a `runc kill USR2` sent as soon as the restored app printed
   * something was lost that way.
   */
  private async appToCome(run: Run): Promise<number | null> {
    this.current = { kind: 'waiting-for-app', run };
    this.log.info({ reason: run.request.reason }, 'dump requested before the app runs: waiting for it');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), this.appWaitMs)));
    const app = await Promise.race([this.supervisor.whenAdopted(), timeout]);
    clearTimeout(timer);
    return app?.pid ?? null;
  }

  private lazyFailed(end: Extract<LazyEnd, { kind: 'failed' }>): DumpOutcome {
    const error = "not dumped: the lazy restore failed, the app's memory was incomplete and it was killed";
    this.log.error({ criu_errors: end.errors }, error);
    return { ok: false, error, criuErrors: end.errors };
  }

  private fault(error: unknown): DumpOutcome {
    this.log.error({ err: (error as Error).stack ?? String(error) }, 'dump failed; the app keeps running');
    return { ok: false, error: `dump failed: ${(error as Error).message}`, criuErrors: [] };
  }
}

function once(release: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    release();
  };
}
