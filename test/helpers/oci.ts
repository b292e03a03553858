/**
 * OCI runtime configs (config.json) for the runc end-to-end test, shaped like what
 * a Kubernetes node's runtime (containerd + runc) gives a non-privileged container:
 * its own PID, mount, IPC, UTS, network and cgroup namespaces, /proc/sys and
 * friends read-only, /proc/kcore and friends masked, /dev/shm a noexec tmpfs, a
 * read-only root filesystem with a fresh tmpfs on /run (and /tmp, see writableTmp),
 * no_new_privs, and exactly the capabilities asked for.
 */

/** containerd's and Docker's default capability set (CAP_SYS_CHROOT included, unlike `runc spec`). */
export const RUNTIME_DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
] as const;

/** What deploy/kubernetes adds to the runtime's defaults: the minimum stasis needs. */
export const CHECKPOINT_CAPS = ['CAP_CHECKPOINT_RESTORE', 'CAP_SYS_PTRACE'] as const;

/**
 * criu's default (not --unprivileged) mode, which stasis picks when CAP_SYS_ADMIN is
 * there, needs more than CAP_SYS_ADMIN: restore sets SO_SNDBUFFORCE/SO_RCVBUFFORCE
 * (CAP_NET_ADMIN) and puts the tree into a time namespace with the old monotonic
 * clock offsets (CAP_SYS_TIME). It also needs a writable /tmp (see writableTmp).
 */
export const PRIVILEGED_EXTRA_CAPS = ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN', 'CAP_SYS_TIME'];

export type CapabilityMode = 'minimal' | 'privileged';

/** minimal = runtime defaults + CHECKPOINT_CAPS (the manifests); privileged adds PRIVILEGED_EXTRA_CAPS (criu's default mode). */
export function capabilitiesFor(mode: CapabilityMode): string[] {
  return [...RUNTIME_DEFAULT_CAPS, ...CHECKPOINT_CAPS, ...(mode === 'privileged' ? PRIVILEGED_EXTRA_CAPS : [])];
}

/** containerd's defaults for a non-privileged container. */
const MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface OciInput {
  readonly rootfs: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly capabilities: readonly string[];
  /** host folder -> container path, bind-mounted read-write */
  readonly volumes: Readonly<Record<string, string>>;
  readonly hostname?: string;
  /** a tmpfs at /tmp (an emptyDir in a pod): criu's default mode needs a writable /tmp, --unprivileged does not */
  readonly writableTmp?: boolean;
  /** the process's uid and gid (default root), as runAsUser/runAsGroup set them */
  readonly user?: { readonly uid: number; readonly gid: number };
  /** no_new_privs (allowPrivilegeEscalation: false); default true. File capabilities are ignored under it. */
  readonly noNewPrivileges?: boolean;
  /** a network namespace to join (test/helpers/podnet.ts) instead of a new, unconnected one */
  readonly netns?: string;
}

export function ociConfig(input: OciInput): Record<string, unknown> {
  const caps = [...input.capabilities];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: input.user ?? { uid: 0, gid: 0 },
      args: [...input.args],
      env: Object.entries(input.env).map(([key, value]) => `${key}=${value}`),
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      noNewPrivileges: input.noNewPrivileges ?? true,
    },
    root: { path: input.rootfs, readonly: true },
    hostname: input.hostname ?? 'stasis',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      // Fresh in every container, as a pod's: without writableTmp /tmp is the read-only root's, which nothing can pass through either.
      { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755', 'size=65536k'] },
      ...(input.writableTmp ? [{ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'] }] : []),
      ...Object.entries(input.volumes).map(([source, destination]) => ({ destination, type: 'bind', source, options: ['rbind', 'rw'] })),
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network', ...(input.netns ? { path: input.netns } : {}) }, { type: 'cgroup' }],
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}
