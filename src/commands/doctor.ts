/**
 * `stasis doctor`: gathers the facts a checkpointing stasis depends on and prints
 * the judged checks (see checks.ts). Changes nothing, except that this process
 * becomes a child subreaper to prove it can.
 */
import { constants } from 'node:fs';
import { access, lstat, open, readFile, statfs } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { execa } from 'execa';
import { listGenerations, imageBytes } from '../checkpoint/store.js';
import { CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN, effectiveCaps, hasCapability, needsUnprivileged, otherUserProcesses, type OtherUser } from '../criu/caps.js';
import { lazyProbeArgs } from '../criu/args.js';
import { probeCriu } from '../criu/run.js';
import { loadConfig, type Config } from '../config.js';
import { NS_LAST_PID } from '../init/pidfloor.js';
import { descendantsOf, readProcTable } from '../init/processes.js';
import { native } from '../native/index.js';
import {
  doctorExitCode,
  formatDoctor,
  isStasis,
  judgeAppUsers,
  judgeCapabilities,
  judgeCriu,
  judgeCriuCheck,
  judgeCriuFault,
  judgeDir,
  judgeFreeSpace,
  judgeInit,
  judgeLazyPages,
  judgeNsLastPid,
  type Check,
  type DirFacts,
  type ProgramRun,
} from './checks.js';

const CRIU_TIMEOUT_MS = 60_000;

/** Where `name` would be executed from: itself when it has a slash, else the first match in PATH. */
export async function resolveExecutable(name: string, path = process.env.PATH ?? ''): Promise<string | null> {
  const candidates = name.includes('/') ? [name] : path.split(delimiter).filter((dir) => dir !== '').map((dir) => join(dir, name));
  for (const candidate of candidates) {
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  return null;
}

async function runProgram(file: string, args: readonly string[]): Promise<ProgramRun> {
  const result = await execa(file, args, { reject: false, all: true, stdin: 'ignore', timeout: CRIU_TIMEOUT_MS });
  return { exitCode: result.exitCode, output: String(result.all ?? result.shortMessage ?? '') };
}

/** A shell wrapper around criu (like scripts/install-criu.sh's) that exports CRIU_FAULT itself. */
async function wrapperSetsCriuFault(path: string | null): Promise<boolean> {
  if (path === null) return false;
  const head = await readFile(path).then((bytes) => bytes.subarray(0, 4096).toString('latin1'), () => '');
  return head.startsWith('#!') && /export\s+CRIU_FAULT=/.test(head);
}

async function dirFacts(path: string | null): Promise<DirFacts> {
  if (path === null) return { kind: 'unset' };
  const info = await lstat(path).catch(() => null);
  if (info === null) {
    const ancestor = await nearestExisting(path);
    const creatable = await access(ancestor, constants.W_OK | constants.X_OK).then(() => true, () => false);
    return { kind: 'missing', path, ancestor, creatable };
  }
  return {
    kind: 'present',
    path,
    symlink: info.isSymbolicLink(),
    directory: info.isDirectory(),
    uid: info.uid,
    mode: info.mode,
    ourUid: process.getuid?.() ?? 0,
    writable: await access(path, constants.W_OK | constants.X_OK).then(() => true, () => false),
  };
}

async function nearestExisting(path: string): Promise<string> {
  let current = path;
  while (!(await lstat(current).then(() => true, () => false))) {
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  return current;
}

async function freeBytes(path: string | null): Promise<number | null> {
  if (path === null) return null;
  const stats = await statfs(await nearestExisting(path)).catch(() => null);
  return stats === null ? null : stats.bavail * stats.bsize;
}

/** The newest generation's size: about what the next dump writes. */
async function lastDumpSize(dir: string | null): Promise<{ bytes: number; from: string } | null> {
  if (dir === null) return null;
  const newest = (await listGenerations(dir).catch(() => []))[0];
  if (newest === undefined) return null;
  return { bytes: await imageBytes(newest.path).catch(() => 0), from: newest.name };
}

async function nsLastPidOpenError(): Promise<string | null> {
  try {
    const handle = await open(NS_LAST_PID, constants.O_WRONLY);
    await handle.close();
    return null;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  }
}

function subreaperError(): string | null {
  try {
    native().setChildSubreaper();
    return native().isChildSubreaper() ? null : 'PR_SET_CHILD_SUBREAPER did not stick';
  } catch (error) {
    return (error as Error).message;
  }
}

async function pid1Command(): Promise<string | null> {
  const text = await readFile('/proc/1/cmdline', 'utf8').catch(() => null);
  return text === null ? null : text.split('\0').filter((word) => word !== '').join(' ') || null;
}

/** The app's processes of another user, when PID 1 is stasis: PID 1's tree less this process and its callers. */
function appOtherUsers(pid1: string | null): OtherUser[] | null {
  if (process.pid === 1 || !isStasis(pid1)) return null;
  const table = readProcTable();
  const ours = new Set<number>();
  for (let pid: number | undefined = process.pid; pid !== undefined && pid > 1 && !ours.has(pid); pid = table.find((entry) => entry.pid === pid)?.ppid) ours.add(pid);
  return otherUserProcesses(descendantsOf(1, table).filter((entry) => !ours.has(entry.pid)).map((entry) => entry.pid));
}

function capLine(status: string, field: string): string {
  return new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? '0';
}

/** Every check, in the order an operator fixes them. */
export async function runChecks(config: Config, env: Readonly<Record<string, string | undefined>> = process.env): Promise<Check[]> {
  const resolved = await resolveExecutable(config.criu, env.PATH ?? '');
  const probe = await probeCriu(config.criu);
  const usable = !('error' in probe);
  const unprivileged = needsUnprivileged();
  const status = await readFile('/proc/self/status', 'utf8');
  const effective = effectiveCaps(status);
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const pid1 = await pid1Command();
  return [
    judgeCriu(config.criu, probe, resolved),
    judgeCriuCheck(usable ? await runProgram(config.criu, ['check', ...(unprivileged ? ['--unprivileged'] : [])]) : null, unprivileged),
    judgeCapabilities({ effective, ambient: capLine(status, 'CapAmb'), bounding: capLine(status, 'CapBnd'), uid: process.getuid?.() ?? 0 }),
    judgeInit({ pid: process.pid, pid1Command: pid1, subreaperError: subreaperError() }),
    judgeAppUsers({ effective, others: appOtherUsers(pid1) }),
    judgeNsLastPid({
      openError: await nsLastPidOpenError(),
      capable: hasCapability(effective, CAP_SYS_ADMIN) || hasCapability(effective, CAP_CHECKPOINT_RESTORE),
    }),
    judgeDir(await dirFacts(config.dir)),
    judgeFreeSpace({ free: await freeBytes(config.dir), estimate: await lastDumpSize(config.dir) }),
    judgeLazyPages(usable ? await runProgram(config.criu, lazyProbeArgs(unprivileged)) : null, config.lazy),
    judgeCriuFault({ value: env.CRIU_FAULT, wrapperSetsIt: await wrapperSetsCriuFault(resolved), virtualMachine: /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo) }),
    // loaded only with a store configured: the AWS SDK is most of the bundle
    ...(config.store === null ? [] : await import('../store/doctor.js').then(async ({ judgeStore, storeFacts }) => judgeStore(await storeFacts(config, env)))),
  ];
}

export interface DoctorOptions {
  readonly json: boolean;
  readonly write: (text: string) => void;
}

/** Prints the checks; 1 when a required one failed, else 0. */
export async function runDoctor(config: Config, options: DoctorOptions): Promise<number> {
  const checks = await runChecks(config);
  const code = doctorExitCode(checks);
  options.write(options.json ? `${JSON.stringify({ ok: code === 0, checks }, null, 2)}\n` : formatDoctor(checks));
  return code;
}

export interface DoctorFlags {
  readonly dir?: string;
  readonly criu?: string;
  readonly json?: boolean;
}

/** The `stasis doctor` action: STASIS_DIR / --dir and STASIS_CRIU / --criu as the main program reads them. */
export async function doctorCommand(flags: DoctorFlags): Promise<number> {
  const config = loadConfig(process.env, { dir: flags.dir, criu: flags.criu });
  return runDoctor(config, { json: flags.json === true, write: (text) => process.stdout.write(text) });
}
