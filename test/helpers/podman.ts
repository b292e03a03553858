/**
 * stasis as PID 1 of a `podman run -d` container (runc underneath, conmon holding its
 * stdio): what the test reads is `podman logs -f`, so the logs podman keeps are what
 * the assertions see; the exit status comes from `podman wait`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { Captured, type CapturedResult } from './captured.js';
import { containersEnv, mustRun, run, VOLUME, type RunResult } from './image.js';
import { capabilitiesFor } from './oci.js';

export const PODMAN = 'podman';

let env: Record<string, string> | undefined;
/** podman's environment: the tests' containers.conf and storage.conf. */
export function podmanEnv(): Record<string, string> {
  env ??= containersEnv();
  return env;
}

export interface PodmanRunOptions {
  readonly image: string;
  /** host folder mounted at /var/lib/stasis (a PVC) */
  readonly volume: string;
  readonly env?: Readonly<Record<string, string>>;
  /** "unconfined" is what deploy/kubernetes sets (seccompProfile Unconfined); "default" is podman's own filter */
  readonly seccomp: 'unconfined' | 'default';
}

/**
 * The securityContext of deploy/kubernetes as podman flags: exactly the runtime
 * defaults + CHECKPOINT_RESTORE + SYS_PTRACE, a read-only root (podman mounts fresh
 * tmpfs on /tmp, /var/tmp and /run), no privilege escalation, no network.
 */
function runFlags(options: PodmanRunOptions): string[] {
  return [
    '--network', 'none',
    '--cap-drop', 'all',
    ...capabilitiesFor('minimal').flatMap((cap) => ['--cap-add', cap]),
    '--read-only',
    '--security-opt', 'no-new-privileges',
    ...(options.seccomp === 'unconfined' ? ['--security-opt', 'seccomp=unconfined'] : []),
    '--volume', `${options.volume}:${VOLUME}`,
    // This VM never fires x86 hardware breakpoints: without it criu dump hangs (docs/runc-e2e.md).
    '--env', 'CRIU_FAULT=130',
    ...Object.entries(options.env ?? {}).flatMap(([key, value]) => ['--env', `${key}=${value}`]),
  ];
}

let serial = 0;

export class PodmanContainer extends Captured {
  readonly id: string;

  constructor(options: PodmanRunOptions) {
    const id = `stasis-e2e-${process.pid}-${++serial}`;
    const started = spawnSync(PODMAN, ['run', '--detach', '--name', id, ...runFlags(options), options.image], { env: { ...process.env, ...podmanEnv() }, encoding: 'utf8', timeout: 60_000 });
    if (started.status !== 0) throw new Error(`podman run ${id} failed (${started.status}): ${started.stderr}`);
    const logs = spawn(PODMAN, ['logs', '--follow', id], { env: { ...process.env, ...podmanEnv() }, stdio: ['ignore', 'pipe', 'pipe'] });
    super(logs, id, 30_000);
    this.id = id;
  }

  podman(args: readonly string[], ms = 120_000): Promise<RunResult> {
    return run(PODMAN, args, podmanEnv(), ms);
  }

  async kill(signal: string): Promise<void> {
    await mustRun(PODMAN, ['kill', '--signal', signal, this.id], podmanEnv());
  }

  /** `podman exec ID ARGS...`: the way a preStop exec hook runs, with the container's capabilities. */
  exec(args: readonly string[], ms = 120_000): Promise<RunResult> {
    return this.podman(['exec', this.id, ...args], ms);
  }

  /** `podman stop -t SECONDS`: SIGTERM to PID 1, SIGKILL after the grace period. */
  async stop(seconds = 60): Promise<void> {
    await mustRun(PODMAN, ['stop', '--time', String(seconds), this.id], podmanEnv(), (seconds + 30) * 1000);
  }

  /** The logs to the end, and the container's exit status from `podman wait`. */
  async ended(ms = 120_000): Promise<CapturedResult> {
    const result = await this.finished(ms);
    const code = Number((await mustRun(PODMAN, ['wait', this.id], podmanEnv(), ms)).trim());
    return { ...result, code };
  }

  /** Kills whatever is left and removes the container (its logs go with it). */
  remove(): void {
    spawnSync(PODMAN, ['rm', '--force', '--time', '0', this.id], { env: { ...process.env, ...podmanEnv() }, stdio: 'ignore', timeout: 60_000 });
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** The parts of a Kubernetes Pod that podPlay reads and writes. */
interface PodSpec {
  containers: Array<{ name: string; image?: string; env?: Array<{ name: string; value?: string }>; volumeMounts?: Array<{ name: string; mountPath: string }>; resources?: unknown }>;
  volumes?: Array<Record<string, unknown>>;
  restartPolicy?: string;
}

export interface PodOptions {
  /** the Pod template of a StatefulSet of deploy/kubernetes, as parsed */
  readonly template: { metadata?: unknown; spec: PodSpec };
  readonly name: string;
  readonly image: string;
  /** host folder standing in for the volumeClaimTemplate "checkpoints" */
  readonly volume: string;
  /** an emptyDir at /tmp (podman's /dev is noexec, and kube play adds no tmpfs for a read-only root) */
  readonly tmp: boolean;
}

/**
 * A Pod of the StatefulSet's template for `podman kube play`: the image is the local
 * one, the PVC a hostPath, no restarts, CRIU_FAULT=130 (this VM), and the seccomp
 * annotation, because podman 4.3 ignores securityContext.seccompProfile.
 */
export function podOf(options: PodOptions): Record<string, unknown> {
  const spec = structuredClone(options.template.spec);
  const [app] = spec.containers;
  if (!app) throw new Error('the template has no container');
  app.image = options.image;
  app.env = [...(app.env ?? []), { name: 'CRIU_FAULT', value: '130' }];
  delete app.resources;
  spec.volumes = [...(spec.volumes ?? []), { name: 'checkpoints', hostPath: { path: options.volume, type: 'Directory' } }];
  if (options.tmp) {
    spec.volumes.push({ name: 'tmp', emptyDir: {} });
    app.volumeMounts = [...(app.volumeMounts ?? []), { name: 'tmp', mountPath: '/tmp' }];
  }
  spec.restartPolicy = 'Never';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: options.name, annotations: { 'seccomp.security.alpha.kubernetes.io/pod': 'unconfined' } },
    spec,
  };
}
