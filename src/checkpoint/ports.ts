/**
 * What dumps and restores do to the system beyond the checkpoint directory: run criu,
 * look at and signal processes. Production uses systemPorts; unit tests pass fakes.
 */
import { appendFile } from 'node:fs/promises';
import { otherUserProcesses, type OtherUser } from '../criu/caps.js';
import { probeLazy, startLazyDaemon } from '../criu/lazy.js';
import { runCriu } from '../criu/run.js';
import { processAlive, readProcTable, signalTree, type Kill, type ProcEntry, type SignalFailure } from '../init/processes.js';
import { identifyStdio, type FdIdentity } from '../stdio.js';

export interface CheckpointPorts {
  readonly runCriu: typeof runCriu;
  readonly probeLazy: typeof probeLazy;
  readonly startLazyDaemon: typeof startLazyDaemon;
  readonly processAlive: (pid: number) => boolean;
  readonly processTable: () => ProcEntry[];
  readonly signalTree: (root: number, signal: NodeJS.Signals) => SignalFailure[];
  readonly kill: Kill;
  readonly identifyStdio: (pid: number) => FdIdentity[];
  /** The processes among `pids` that run as another user than stasis. */
  readonly otherUsers: (pids: readonly number[]) => OtherUser[];
  /** Appends to the restore-attempt record (the crash-loop guard). */
  readonly appendFile: (path: string, text: string) => Promise<void>;
}

export const systemPorts: CheckpointPorts = {
  runCriu,
  probeLazy,
  startLazyDaemon,
  processAlive,
  processTable: readProcTable,
  signalTree,
  kill: (pid, signal) => process.kill(pid, signal),
  identifyStdio,
  otherUsers: otherUserProcesses,
  appendFile: (path, text) => appendFile(path, text, { mode: 0o600 }),
};
