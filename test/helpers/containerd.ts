/**
 * A containerd daemon of the test's own (config, root, state and socket under
 * folders only the test uses; the CRI plugin off), and stasis as PID 1 of a
 * foreground `ctr run --rm` on it: the container's stdio are FIFOs that the runc
 * shim v2 writes and ctr copies to its own stdout and stderr, which the test reads;
 * `ctr run` exits with the container's exit status.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Captured } from './captured.js';
import { mustRun, run, VOLUME, type RunResult } from './image.js';
import { CHECKPOINT_CAPS } from './oci.js';
import { poll } from './stasis.js';

export const NAMESPACE = 'stasis-e2e';

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point === dir || point.startsWith(`${dir}/`))
    .sort()
    .reverse();
}

export class Containerd {
  readonly socket: string;
  private daemon: ChildProcess | undefined;

  /** root: persistent data (snapshots, content); state: sockets and runtime state, under /run. */
  constructor(
    readonly root: string,
    readonly state: string,
  ) {
    this.socket = join(state, 'containerd.sock');
  }

  async start(): Promise<void> {
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.state, { recursive: true });
    const config = join(this.root, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = "${this.root}/data"`,
        `state = "${this.state}"`,
        // Only what ctr run needs: no CRI (no Kubernetes here), no snapshotters this host lacks.
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]',
        '[grpc]',
        `  address = "${this.socket}"`,
        '[ttrpc]',
        `  address = "${this.socket}.ttrpc"`,
        '',
      ].join('\n'),
    );
    const log = openSync(join(this.root, 'containerd.log'), 'a');
    this.daemon = spawn('containerd', ['--config', config], { stdio: ['ignore', log, log] });
    closeSync(log);
    await poll(`containerd answering on ${this.socket}; log ${join(this.root, 'containerd.log')}`, () => (spawnSync('ctr', ['--address', this.socket, 'version'], { stdio: 'ignore' }).status === 0 ? true : undefined), 30_000);
  }

  ctr(args: readonly string[], ms = 120_000): Promise<RunResult> {
    return run('ctr', ['--address', this.socket, '--namespace', NAMESPACE, ...args], {}, ms);
  }

  async mustCtr(args: readonly string[], ms = 120_000): Promise<string> {
    return mustRun('ctr', ['--address', this.socket, '--namespace', NAMESPACE, ...args], {}, ms);
  }

  /** Every task and container gone (their shims exit with them), the daemon stopped, its mounts and folders removed. */
  async stop(): Promise<void> {
    if (this.daemon && this.daemon.exitCode === null) {
      const listed = await this.ctr(['container', 'list', '--quiet']);
      for (const id of listed.stdout.split('\n').filter(Boolean)) await removeContainer(this, id);
      const exited = new Promise((resolve) => this.daemon?.once('exit', resolve));
      this.daemon.kill('SIGTERM');
      await exited;
    }
    // ctr's runc keeps its state per namespace under containerd's default /run/containerd/runc, empty by now
    try {
      rmdirSync(join('/run/containerd/runc', NAMESPACE));
    } catch {
      // not there, or not empty: another client's containers in that namespace
    }
    for (const dir of [this.state, this.root]) {
      for (const point of mountsUnder(dir)) spawnSync('umount', ['-l', point], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

async function removeContainer(containerd: Containerd, id: string): Promise<void> {
  await containerd.ctr(['task', 'delete', '--force', id]);
  await containerd.ctr(['container', 'delete', id]);
}

export interface CtrRunOptions {
  readonly image: string;
  /** host folder bind-mounted at /var/lib/stasis (a PVC) */
  readonly volume: string;
  readonly env?: Readonly<Record<string, string>>;
}

let serial = 0;

export class CtrContainer extends Captured {
  readonly id: string;

  /**
   * ctr's defaults are containerd's for a pod: its 14 default capabilities, no
   * seccomp filter (as seccompProfile Unconfined), NoNewPrivs (allowPrivilegeEscalation
   * false), a tmpfs on /run. Added, as deploy/kubernetes has it: CHECKPOINT_RESTORE and
   * SYS_PTRACE, a read-only root, the volume, and a fresh tmpfs on /tmp (an emptyDir).
   * No arguments after the ID: the image's ENTRYPOINT and CMD run.
   */
  constructor(
    private readonly containerd: Containerd,
    options: CtrRunOptions,
  ) {
    const id = `stasis-e2e-${process.pid}-${++serial}`;
    const env = { CRIU_FAULT: '130', ...options.env }; // this VM never fires x86 hardware breakpoints (docs/runc-e2e.md)
    const args = [
      '--address', containerd.socket, '--namespace', NAMESPACE, 'run', '--rm', '--read-only',
      ...CHECKPOINT_CAPS.flatMap((cap) => ['--cap-add', cap]),
      '--mount', `type=bind,src=${options.volume},dst=${VOLUME},options=rbind:rw`,
      '--mount', 'type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777',
      ...Object.entries(env).flatMap(([key, value]) => ['--env', `${key}=${value}`]),
      options.image, id,
    ];
    const child = spawn('ctr', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // ctr's own error lines ("ctr: ...") are neither the app's nor stasis's
    super(child, id, 30_000, (line) => line.startsWith('ctr: '));
    this.id = id;
  }

  /** `ctr task kill --signal SIGNAL ID`: the signal reaches the container's PID 1, stasis. */
  async kill(signal: string): Promise<void> {
    await this.containerd.mustCtr(['task', 'kill', '--signal', signal, this.id]);
  }

  /** Kills whatever is left and removes the task and the container. */
  async remove(): Promise<void> {
    await removeContainer(this.containerd, this.id);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
