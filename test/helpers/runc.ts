/**
 * stasis as PID 1 of a real OCI container: `runc run` in the foreground, so the
 * container's stdin, stdout and stderr are the anonymous pipes runc makes (it copies
 * them to its own stdio, which the test reads), and `runc run` exits with the
 * container's exit status. Signals go in as `runc kill ID SIGNAL`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ociConfig, type OciInput } from './oci.js';
import { Captured } from './captured.js';
import { ROOT } from './stasis.js';

export const RUNC = process.env.STASIS_TEST_RUNC ?? 'runc';
/** runc's state folder for these tests only, so a test never touches other containers. */
export const RUNC_ROOT = '/run/stasis-e2e-runc';
export const SEA = join(ROOT, 'dist/stasis');
const BUILD_ROOTFS = join(ROOT, 'scripts/build-rootfs.sh');
const SETUP = 'scripts/setup-runc.sh';

/**
 * What every test gives stasis inside the rootfs: PATH, JSON logs and CRIU_FAULT=130,
 * because this VM never fires x86 hardware breakpoints and criu dump hangs without it
 * (docs/runc-e2e.md, "What broke").
 */
export const ROOTFS_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  STASIS_LOG_FORMAT: 'json',
  CRIU_FAULT: '130',
};

export function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' }).status === 0;
}

/** Why the runc test cannot run here, or null. The test fails with this text; it never skips. */
export function missingRuncTools(): string | null {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('it must run as root');
  if (!onPath(RUNC)) problems.push(`${RUNC} is not installed`);
  if (!onPath('debootstrap')) problems.push('debootstrap is not installed');
  if (!existsSync(SEA)) problems.push(`${SEA} is missing (npm run build)`);
  return problems.length === 0 ? null : `runc e2e test: ${problems.join('; ')}. Run: bash ${SETUP} (as root), then npm run build`;
}

/** Runs scripts/build-rootfs.sh (Debian 13 + criu cached under .cache/rootfs; stasis copied in) and returns the rootfs. */
export function buildRootfs(): string {
  const result = spawnSync('bash', [BUILD_ROOTFS], { cwd: ROOT, encoding: 'utf8', timeout: 60 * 60_000 });
  if (result.status !== 0) throw new Error(`scripts/build-rootfs.sh failed (status ${result.status}):\n${result.stderr}`);
  const path = result.stdout.trim().split('\n').at(-1) ?? '';
  if (!existsSync(join(path, 'usr/local/bin/stasis'))) throw new Error(`no rootfs at ${JSON.stringify(path)}:\n${result.stderr}`);
  return path;
}

let serial = 0;

/** One `runc run` of a fresh bundle; remove() cleans up whatever happened. */
export class RuncContainer extends Captured {
  readonly id: string;
  readonly bundle: string;

  constructor(config: OciInput) {
    const id = `stasis-e2e-${process.pid}-${++serial}`;
    const bundle = mkdtempSync(join(tmpdir(), 'stasis-bundle-'));
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(ociConfig(config), null, 2));
    mkdirSync(RUNC_ROOT, { recursive: true });
    const child = spawn(RUNC, ['--root', RUNC_ROOT, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    // runc's own log lines (logrus text) are neither the app's nor stasis's
    super(child, id, 30_000, (line) => /^time=".*" level=/.test(line));
    this.id = id;
    this.bundle = bundle;
  }

  /** `runc kill ID SIGNAL`: the signal reaches the container's PID 1, stasis. */
  kill(signal: string): void {
    const result = spawnSync(RUNC, ['--root', RUNC_ROOT, 'kill', this.id, signal], { encoding: 'utf8', timeout: 30_000 });
    if (result.status !== 0) throw new Error(`runc kill ${this.id} ${signal} failed: ${result.stderr}`);
  }

  /**
   * `runc exec ID ARGS...`: a new process in the running container, with its
   * capabilities and environment, the way a Kubernetes preStop exec hook runs.
   */
  exec(args: readonly string[], ms = 120_000): { code: number | null; stdout: string; stderr: string } {
    const result = spawnSync(RUNC, ['--root', RUNC_ROOT, 'exec', this.id, ...args], { encoding: 'utf8', timeout: ms });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** `exec` without blocking the test's event loop (its output readers keep running), with the signal that ended the process if one did. */
  execAsync(args: readonly string[], ms = 120_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(RUNC, ['--root', RUNC_ROOT, 'exec', this.id, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: ms });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }

  /** Kills whatever is left and removes the container and its bundle. */
  remove(): void {
    spawnSync(RUNC, ['--root', RUNC_ROOT, 'delete', '--force', this.id], { stdio: 'ignore', timeout: 30_000 });
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    rmSync(this.bundle, { recursive: true, force: true });
  }
}
