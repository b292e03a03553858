/**
 * Pure part of `stasis doctor`: each check judged from facts gathered elsewhere,
 * the exit code, and the readable table.
 */
import { CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_RESOURCE, hasCapability, type OtherUser } from '../criu/caps.js';
import { judgeLazyProbe } from '../criu/log.js';
import { formatBytes } from '../format.js';
import { NS_LAST_PID } from '../init/pidfloor.js';
import { formatTable, truncate } from './table.js';

/** FAIL: stasis cannot checkpoint here; warn: it can, with a limitation; skip: not judged (something it needs failed). */
export type CheckStatus = 'ok' | 'warn' | 'FAIL' | 'skip';

export interface Check {
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** How to fix it; null when there is nothing to do. */
  readonly fix: string | null;
}

export const ok = (name: string, detail: string): Check => ({ name, status: 'ok', detail, fix: null });
export const warn = (name: string, detail: string, fix: string): Check => ({ name, status: 'warn', detail, fix });
export const fail = (name: string, detail: string, fix: string): Check => ({ name, status: 'FAIL', detail, fix });
export const skip = (name: string, detail: string): Check => ({ name, status: 'skip', detail, fix: null });

const INSTALL_CRIU = 'install criu 4 or newer (a distribution package if it is new enough, or scripts/install-criu.sh) and point STASIS_CRIU (--criu) at it';

/** A run of a program: exit code (undefined when it could not start) and its stdout+stderr. */
export interface ProgramRun {
  readonly exitCode: number | undefined;
  readonly output: string;
}

export function judgeCriu(criu: string, probe: { readonly path: string; readonly version: string } | { readonly error: string }, resolved: string | null): Check {
  if (resolved === null) return fail('criu', `${criu} not found${criu.includes('/') ? ' or not executable' : ' in PATH'}`, INSTALL_CRIU);
  if ('error' in probe) return fail('criu', probe.error, INSTALL_CRIU);
  return ok('criu', `criu ${probe.version} (${resolved})`);
}

/** `criu check`: "Looks good." is ok; "Looks good but ..." (missing optional kernel features) is a warning. */
export function judgeCriuCheck(run: ProgramRun | null, unprivileged: boolean): Check {
  const name = unprivileged ? 'criu check --unprivileged' : 'criu check';
  if (run === null) return skip(name, 'not run: no usable criu');
  const lines = run.output.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  const verdict = lines.find((line) => line.startsWith('Looks good'));
  if (run.exitCode === 0 && verdict === 'Looks good.') return ok(name, verdict);
  if (verdict !== undefined) {
    return warn(name, verdict, 'some kernel features criu can use are missing; dumps of apps that need them fail (run criu check --all for the list)');
  }
  const errors = lines.filter((line) => /error/i.test(line) && !/RLIMIT_NOFILE/.test(line));
  if (errors.length > 0 && errors.every((line) => /ns_last_pid sysctl is inaccessible: Read-only file system/.test(line))) {
    // /proc/sys read-only is the Kubernetes default: criu restores PIDs with clone3 there
    return warn(name, 'stopped at the read-only /proc/sys/kernel/ns_last_pid (restores set PIDs with clone3 instead); the checks after it did not run', 'nothing needed; the dump and restore themselves say what else is missing');
  }
  return fail(name, `failed (exit ${run.exitCode ?? 'n/a'}): ${errors.at(-1) ?? lines.at(-1) ?? 'no output'}`, 'fix what criu check reports (kernel config, capabilities, seccomp/AppArmor profile of the container)');
}

export interface CapsInput {
  /** /proc/self/status CapEff and CapAmb (hex). */
  readonly effective: string;
  readonly ambient: string;
  /** CapBnd (hex): what file capabilities of criu can give it when stasis is not root. */
  readonly bounding: string;
  readonly uid: number;
}

const CAPS_FIX =
  'give the container CAP_SYS_ADMIN, or (kernel >= 5.9) CAP_CHECKPOINT_RESTORE and CAP_SYS_PTRACE: securityContext.capabilities.add: ["CHECKPOINT_RESTORE", "SYS_PTRACE"]';

export function judgeCapabilities(input: CapsInput): Check {
  const name = 'capabilities';
  const has = (bit: number): boolean => hasCapability(input.effective, bit);
  let detail: string;
  let needed: number[];
  if (has(CAP_SYS_ADMIN)) {
    detail = 'CAP_SYS_ADMIN: criu runs privileged';
    needed = [CAP_SYS_ADMIN];
  } else if (has(CAP_CHECKPOINT_RESTORE) && has(CAP_SYS_PTRACE)) {
    detail = 'CAP_CHECKPOINT_RESTORE + CAP_SYS_PTRACE, no CAP_SYS_ADMIN: criu runs with --unprivileged';
    needed = [CAP_CHECKPOINT_RESTORE, CAP_SYS_PTRACE];
  } else if (input.uid !== 0 && hasCapability(input.bounding, CAP_CHECKPOINT_RESTORE) && hasCapability(input.bounding, CAP_SYS_PTRACE)) {
    // a non-root pod: stasis has none, criu may have them from its file (criu check above tells)
    return warn(
      name,
      `uid ${input.uid} without capabilities; CAP_CHECKPOINT_RESTORE and CAP_SYS_PTRACE are in the bounding set, so criu works only with them as file capabilities`,
      'in the image: setcap cap_checkpoint_restore,cap_sys_ptrace,cap_setpcap+eip /usr/sbin/criu, and allowPrivilegeEscalation: true (see deploy/kubernetes/statefulset-nonroot.yaml)',
    );
  } else {
    const missing = [
      ...(has(CAP_CHECKPOINT_RESTORE) ? [] : ['CAP_CHECKPOINT_RESTORE']),
      ...(has(CAP_SYS_PTRACE) ? [] : ['CAP_SYS_PTRACE']),
    ];
    return fail(name, `no CAP_SYS_ADMIN and no ${missing.join(' / ')}: criu cannot dump or restore`, CAPS_FIX);
  }
  // Without root, capabilities survive exec only as ambient (or file) capabilities.
  if (input.uid !== 0 && !needed.every((bit) => hasCapability(input.ambient, bit))) {
    return warn(
      name,
      `${detail}, but uid ${input.uid} is not root and they are not ambient: criu will not inherit them`,
      'run as root in the container, add them as ambient capabilities, or give the criu binary file capabilities (setcap cap_checkpoint_restore,cap_sys_ptrace,cap_setpcap+eip /usr/sbin/criu) and allow privilege escalation',
    );
  }
  return ok(name, detail);
}

export interface AppUsersInput {
  /** CapEff (hex) of this process. */
  readonly effective: string;
  /** The app's processes (below a PID-1 stasis) that run as another user; null when no such app is here. */
  readonly others: readonly OtherUser[] | null;
}

/** criu reads every dumped process's resource limits: another user's need CAP_SYS_RESOURCE. */
export function judgeAppUsers(input: AppUsersInput): Check {
  const name = 'app user';
  if (hasCapability(input.effective, CAP_SYS_RESOURCE)) return ok(name, 'CAP_SYS_RESOURCE: criu can dump processes of any user');
  if (input.others === null) return skip(name, 'no app of a PID-1 stasis here to look at (run stasis doctor in the running container)');
  const first = input.others[0];
  if (first === undefined) return ok(name, "the app runs as stasis's user: criu can read its resource limits");
  const more = input.others.length > 1 ? ` (and ${input.others.length - 1} more)` : '';
  return warn(
    name,
    `process ${first.pid} of the app runs as uid ${first.uid}${more} and there is no CAP_SYS_RESOURCE: criu cannot read its resource limits, so every dump fails`,
    'add SYS_RESOURCE to the container\'s capabilities (securityContext.capabilities.add), or run the app as stasis\'s user',
  );
}

export interface InitInput {
  readonly pid: number;
  /** /proc/1/cmdline, words joined by spaces; null when unreadable. */
  readonly pid1Command: string | null;
  /** null: PR_SET_CHILD_SUBREAPER worked; else why the native addon or prctl failed. */
  readonly subreaperError: string | null;
}

/** Pure: does this command line (/proc/1/cmdline) run stasis? */
export function isStasis(command: string | null): command is string {
  return command !== null && /(^|[/\s])stasis(\s|$)|dist\/js\/main\.js/.test(command);
}

export function judgeInit(input: InitInput): Check {
  const name = 'PID 1 / subreaper';
  if (input.subreaperError !== null) {
    return fail(name, `native addon or prctl(PR_SET_CHILD_SUBREAPER) failed: ${input.subreaperError}`, 'build the addon (npm run build) or use the single executable dist/stasis');
  }
  if (input.pid === 1) return ok(name, 'this process is PID 1');
  if (isStasis(input.pid1Command)) {
    return ok(name, `PID 1 is stasis (${truncate(input.pid1Command, 60)})`);
  }
  return ok(name, `not PID 1 here (PID 1: ${truncate(input.pid1Command ?? 'unknown', 40)}); stasis would run as a child subreaper, which works`);
}

export interface NsLastPidInput {
  /** null when /proc/sys/kernel/ns_last_pid opened for writing; else why not. */
  readonly openError: string | null;
  /** The kernel also wants CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE to accept a write. */
  readonly capable: boolean;
}

export function judgeNsLastPid(input: NsLastPidInput): Check {
  const name = 'ns_last_pid';
  if (input.openError === null && input.capable) return ok(name, `${NS_LAST_PID} is writable: STASIS_MIN_PID is set directly`);
  const why = input.openError ?? 'no CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE';
  return warn(
    name,
    `not writable (${why}): the PID floor is raised by forking short-lived children up to it instead (slower start)`,
    'nothing needed; for the fast path make /proc/sys writable for the container or grant CAP_CHECKPOINT_RESTORE',
  );
}

export type DirFacts =
  | { readonly kind: 'unset' }
  | { readonly kind: 'missing'; readonly path: string; readonly ancestor: string; readonly creatable: boolean }
  | {
      readonly kind: 'present';
      readonly path: string;
      readonly symlink: boolean;
      readonly directory: boolean;
      readonly uid: number;
      readonly mode: number;
      readonly ourUid: number;
      readonly writable: boolean;
    };

/** The same rules as the store's openStore: a directory of ours, not writable by group or others. */
export function judgeDir(facts: DirFacts): Check {
  const name = 'STASIS_DIR';
  if (facts.kind === 'unset') {
    return warn(name, 'not set: stasis runs as a plain init without checkpoints', 'set STASIS_DIR (or --dir) to a directory on a volume that outlives the pod');
  }
  if (facts.kind === 'missing') {
    if (facts.creatable) return ok(name, `${facts.path} does not exist yet; stasis creates it (mode 0700) at start`);
    return fail(name, `${facts.path} does not exist and cannot be created (${facts.ancestor} is not writable)`, `mkdir -m 700 ${facts.path} as the user stasis runs as`);
  }
  const mode = (facts.mode & 0o777).toString(8).padStart(3, '0');
  if (facts.symlink) return fail(name, `${facts.path} is a symbolic link; stasis refuses it`, 'point STASIS_DIR at the real directory');
  if (!facts.directory) return fail(name, `${facts.path} is not a directory`, 'point STASIS_DIR at a directory');
  if (facts.uid !== facts.ourUid) {
    return fail(name, `${facts.path} is owned by uid ${facts.uid}, not by uid ${facts.ourUid}; stasis refuses it`, `chown ${facts.ourUid} ${facts.path} (or fsGroup/runAsUser so the volume is ours)`);
  }
  if ((facts.mode & 0o022) !== 0) {
    return fail(name, `${facts.path} is writable by group or others (mode ${mode}); checkpoints hold the app's memory, stasis refuses it`, `chmod 700 ${facts.path}`);
  }
  if (!facts.writable) return fail(name, `${facts.path} is not writable (mode ${mode}, read-only file system?)`, `make ${facts.path} writable by uid ${facts.ourUid}`);
  return ok(name, `${facts.path} (mode ${mode}, ours)`);
}

export interface SpaceInput {
  /** Bytes available to us on the file system of STASIS_DIR (or its nearest existing parent); null when unknown. */
  readonly free: number | null;
  /** The newest generation's size: about what the next dump writes; null without a generation. */
  readonly estimate: { readonly bytes: number; readonly from: string } | null;
}

export function judgeFreeSpace(input: SpaceInput): Check {
  const name = 'free space';
  if (input.free === null) return skip(name, 'not measured: no STASIS_DIR');
  const free = formatBytes(input.free);
  if (input.estimate === null) return ok(name, `${free} free (no generation yet; a dump needs about the app's RSS)`);
  const need = formatBytes(input.estimate.bytes);
  if (input.free < input.estimate.bytes) {
    return fail(name, `${free} free, but the last dump (${input.estimate.from}) took ${need}: the next one will not fit`, 'free space or use a bigger volume; a lower STASIS_KEEP keeps fewer generations');
  }
  if (input.free < 2 * input.estimate.bytes) {
    return warn(name, `${free} free; the last dump (${input.estimate.from}) took ${need}: little room if the app grows`, 'give the volume at least twice the app\'s RSS');
  }
  return ok(name, `${free} free; the last dump (${input.estimate.from}) took ${need}`);
}

/**
 * `criu check --feature uffd-noncoop`: needed only for lazy restores (STASIS_LAZY,
 * criu --lazy-pages); without it stasis restores eagerly, so this is never a failure.
 */
export function judgeLazyPages(run: ProgramRun | null, lazyOn = false): Check {
  const name = 'lazy pages';
  if (run === null) return skip(name, 'not run: no usable criu');
  const setting = lazyOn ? 'STASIS_LAZY=true' : 'STASIS_LAZY is off';
  const support = judgeLazyProbe(run);
  if (support.ok) return ok(name, `userfaultfd (uffd-noncoop) supported: lazy restores work (${setting})`);
  return warn(
    name,
    `${support.reason}; ${lazyOn ? 'STASIS_LAZY=true falls back to normal restores' : 'lazy restore (STASIS_LAZY) cannot be used'}; normal restores are not affected`,
    'optional, only STASIS_LAZY needs it: a kernel with userfaultfd, and CAP_SYS_ADMIN (criu --unprivileged, chosen without it, never uses userfaultfd)',
  );
}

export interface CriuFaultInput {
  /** CRIU_FAULT in this environment. */
  readonly value: string | undefined;
  /** The criu binary is a wrapper script that exports CRIU_FAULT itself (scripts/install-criu.sh's does). */
  readonly wrapperSetsIt: boolean;
  /** /proc/cpuinfo has the `hypervisor` flag. */
  readonly virtualMachine: boolean;
}

const HANG_NOTE = 'on VMs where hardware breakpoints do not fire, criu dump hangs (dump.log stops at "Waiting for PID to trap")';

export function judgeCriuFault(input: CriuFaultInput): Check {
  const name = 'CRIU_FAULT';
  if (input.value === '130') return ok(name, 'CRIU_FAULT=130: criu uses no hardware breakpoints (PTRACE_SYSCALL stepping), so dumps cannot hang on them');
  if (input.value !== undefined && input.value !== '') {
    return warn(name, `CRIU_FAULT=${input.value} injects criu fault ${input.value}; only 130 (no hardware breakpoints) is meant for real use`, 'unset it, or set CRIU_FAULT=130');
  }
  if (input.wrapperSetsIt) return ok(name, 'not set here; the criu wrapper exports CRIU_FAULT=130 itself');
  if (input.virtualMachine) return warn(name, `not set, and this is a virtual machine: ${HANG_NOTE}`, 'if dumps hang, set CRIU_FAULT=130 in the environment');
  return ok(name, 'not set (not needed on bare metal)');
}

/** 1 when a check failed (stasis cannot checkpoint until it is fixed), else 0. */
export function doctorExitCode(checks: readonly Check[]): 0 | 1 {
  return checks.some((check) => check.status === 'FAIL') ? 1 : 0;
}

/** The table, then a one-line verdict. */
export function formatDoctor(checks: readonly Check[]): string {
  const table = formatTable(
    ['CHECK', 'STATUS', 'DETAIL', 'HOW TO FIX'],
    checks.map((check) => [check.name, check.status, check.detail, check.fix ?? '']),
    { maxWidths: [undefined, undefined, 64, 56] },
  );
  const failed = checks.filter((check) => check.status === 'FAIL').length;
  const warnings = checks.filter((check) => check.status === 'warn').length;
  const verdict =
    failed > 0
      ? `${failed} required check${failed === 1 ? '' : 's'} failed: stasis cannot checkpoint here until ${failed === 1 ? 'it is' : 'they are'} fixed.`
      : `Ready to checkpoint${warnings > 0 ? ` (${warnings} warning${warnings === 1 ? '' : 's'})` : ''}.`;
  return `${table}\n\n${verdict}\n`;
}
