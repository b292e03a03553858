import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dumpArgs, DUMP_LOG } from '../criu/args.js';
import { explainCriuErrors, explainFsError } from '../criu/log.js';
import { descendantsOf } from '../init/processes.js';
import { parseStatsImage, type DumpStats } from '../criu/stats.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';
import { FAILED_DUMP_LOG, fingerprint, type Metadata } from './layout.js';
import { systemPorts, type CheckpointPorts } from './ports.js';
import { saveFiles, savesFiles } from './preserve.js';
import { beginIncoming, commit, describeFsFailure, imageSizes, nextGenerationNumber, prune, volumeFull } from './store.js';
import type { CheckpointContext } from './context.js';
import type { PublishOutcome } from '../store/open.js';
import type { Published } from '../store/upload.js';

/** Uploads a committed local generation to the object store (STASIS_STORE). */
export type Publish = (local: { readonly generation: number; readonly path: string }) => Promise<PublishOutcome>;

export interface DumpRequest {
  readonly mode: 'continue' | 'exit';
  readonly reason: string;
}

export type DumpOutcome =
  | {
      readonly ok: true;
      readonly generation: number;
      readonly bytes: number;
      readonly durationMs: number;
      readonly mode: 'continue' | 'exit';
      readonly stats: DumpStats | undefined;
      /** its copy in the object store, once uploaded */
      readonly remote?: Published;
    }
  | { readonly ok: false; readonly error: string; readonly criuErrors: readonly string[] };

/**
 * Dumps the app tree into a new generation. In exit mode criu leaves the tree
 * stopped: it is killed only once the generation is committed, and resumed if
 * anything failed - so a failed dump never costs the app.
 */
export async function dumpApp(
  context: CheckpointContext,
  appPid: number,
  request: DumpRequest,
  ports: CheckpointPorts = systemPorts,
  publish?: Publish,
): Promise<DumpOutcome> {
  const { config, dir, log } = context;
  const started = performance.now();
  const stdio = ports.identifyStdio(appPid);
  const signalApp = (signal: NodeJS.Signals): void => signalTreeLogged(ports, log, appPid, signal);
  log.info({ pid: appPid, mode: request.mode, reason: request.reason }, 'dump started');
  let incoming: string;
  try {
    incoming = await beginIncoming(dir);
  } catch (error) {
    const message = await describeFsFailure(dir, error);
    log.error({ pid: appPid, error: message, err: (error as Error).message }, 'dump failed; the app keeps running');
    return { ok: false, error: message, criuErrors: [] };
  }
  const heartbeat = setInterval(() => {
    log.info({ pid: appPid, elapsed_ms: Math.round(performance.now() - started) }, 'dump still running');
  }, 5000);
  const files = { pid: appPid, preserve: config.preserve, exclude: config.preserveExclude, startedAt: performance.timeOrigin, ownRoots: [dir] };
  try {
    // files are copied with the tree stopped, else a file written after the dump no longer fits the images
    const stopped =
      request.mode === 'exit' ||
      (await savesFiles(files, log).catch((error: unknown) => {
        // not knowing is no reason to skip the files: copy them with the tree stopped
        log.warn({ pid: appPid, err: (error as Error).message }, 'cannot tell whether the app holds files to save; dumping with the app stopped');
        return true;
      }));
    const args = dumpArgs({
      pid: appPid,
      imagesDir: incoming,
      leave: stopped ? 'stop' : 'continue',
      tcp: config.tcp,
      fileLocks: config.fileLocks,
      extUnixSockets: config.extUnixSockets,
      unprivileged: context.unprivileged,
      ghostLimit: config.ghostLimit,
      extra: config.criuDumpOpts,
    });
    const run = await ports.runCriu(config.criu, args, { stdio: 'ignore', logPath: join(incoming, DUMP_LOG), timeoutMs: config.criuTimeout });
    if (!run.ok) {
      // criu resumes the tree itself when it fails; SIGCONT is for a criu that died half-way
      if (stopped || run.timedOut) signalApp('SIGCONT');
      // On a full volume criu's own log (kept there) is cut short: ask the volume before freeing it.
      const full = await volumeFull(dir);
      await keepFailureLog(dir, incoming, log);
      const tree = [appPid, ...descendantsOf(appPid, ports.processTable()).map((entry) => entry.pid)];
      const error = explainCriuErrors(run.errors, dir, { otherUsers: ports.otherUsers(tree) }) ?? (full ? explainFsError('ENOSPC', dir) : undefined) ?? run.errors.at(-1) ?? 'criu dump failed';
      const gone = !ports.processAlive(appPid);
      log.error({ pid: appPid, duration_ms: run.durationMs, error, criu_errors: run.errors }, gone ? 'dump failed; the app died during it' : 'dump failed; the app keeps running');
      return { ok: false, error: gone ? `the app died during the dump (${error})` : error, criuErrors: run.errors };
    }
    try {
      const preserved = await saveFiles({ ...files, incoming, limit: config.preserveLimit }, log);
      if (stopped && request.mode === 'continue') signalApp('SIGCONT');
      const stats = await readFile(join(incoming, 'stats-dump'))
        .then((image) => parseStatsImage(image).dump)
        .catch(() => undefined);
      const images = await imageSizes(incoming);
      const bytes = Object.values(images).reduce((sum, size) => sum + size, 0);
      const generation = await nextGenerationNumber(dir);
      const metadata: Metadata = {
        format: 1,
        generation,
        created: new Date().toISOString(),
        argv: context.argv,
        appVersion: config.appVersion,
        fingerprint: fingerprint(context.argv, config.appVersion),
        appPid,
        stdio,
        criuVersion: context.criu.version,
        stasisVersion: VERSION,
        mode: request.mode,
        images,
        files: preserved.entries,
        dump: { duration_ms: 0, criu_ms: run.durationMs, bytes, preserved_files: preserved.files, preserved_bytes: preserved.bytes, ...(stats ? { stats } : {}) },
      };
      // stasis.json records the time up to the commit (it cannot include its own fsync);
      // the log event and the answer to `stasis checkpoint` include the commit.
      const beforeCommitMs = Math.round(performance.now() - started);
      const committed = await commit(dir, incoming, { ...metadata, dump: { ...metadata.dump, duration_ms: beforeCommitMs } });
      const pruned = await prune(dir, config.keep);
      // exit mode with a store: the app stays stopped until its generation is in the store too
      const uploaded = request.mode === 'exit' && publish !== undefined ? await publish({ generation, path: committed.path }) : undefined;
      if (uploaded?.ok === false) {
        signalApp('SIGCONT');
        log.error({ generation, pid: appPid, error: uploaded.error }, 'dump not uploaded; the app keeps running');
        return { ok: false, error: uploaded.error, criuErrors: [] };
      }
      const durationMs = Math.round(performance.now() - started);
      // exit mode: criu left the tree stopped; the committed generation now holds it
      if (request.mode === 'exit') signalApp('SIGKILL');
      log.info(
        {
          generation,
          pid: appPid,
          mode: request.mode,
          duration_ms: durationMs,
          criu_ms: run.durationMs,
          bytes,
          freezing_ms: usToMs(stats?.freezing_time_us),
          frozen_ms: usToMs(stats?.frozen_time_us),
          pages_written: stats?.pages_written,
          preserved_files: preserved.files,
          preserved_bytes: preserved.bytes,
          pruned,
          path: committed.path,
        },
        'dump committed',
      );
      return { ok: true, generation, bytes, durationMs, mode: request.mode, stats, ...(uploaded?.ok === true ? { remote: uploaded.published } : {}) };
    } catch (error) {
      if (stopped) signalApp('SIGCONT');
      await rm(incoming, { recursive: true, force: true });
      const message = explainFsError((error as NodeJS.ErrnoException).code, dir) ?? (error as Error).message;
      log.error({ pid: appPid, err: (error as Error).message, error: message }, 'dump could not be committed; the app keeps running, the previous generation is intact');
      return { ok: false, error: message, criuErrors: [] };
    }
  } finally {
    clearInterval(heartbeat);
  }
}

/** Keeps the log of the last failed dump next to the generations, for the operator. */
async function keepFailureLog(dir: string, incoming: string, log: Logger): Promise<void> {
  const text = await readFile(join(incoming, DUMP_LOG)).catch(() => undefined);
  await rm(incoming, { recursive: true, force: true });
  if (text) {
    await writeFile(join(dir, FAILED_DUMP_LOG), text, { mode: 0o600 }).catch((error: unknown) => {
      log.warn({ file: join(dir, FAILED_DUMP_LOG), err: (error as Error).message }, "cannot keep criu's log of the failed dump");
    });
  }
}

function signalTreeLogged(ports: CheckpointPorts, log: Logger, root: number, signal: NodeJS.Signals): void {
  const failures = ports.signalTree(root, signal);
  if (failures.length > 0) log.warn({ pid: root, signal, failures: failures.slice(0, 20) }, 'cannot signal some of the app');
}

function usToMs(us: number | undefined): number | undefined {
  return us === undefined ? undefined : Math.round(us / 100) / 10;
}
