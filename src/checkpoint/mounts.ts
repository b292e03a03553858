/**
 * Which storage a path lives on, from /proc/self/mountinfo: what is lost with the
 * container (and must travel with a checkpoint) and what outlives it.
 */
import { readFileSync } from 'node:fs';

export interface MountEntry {
  readonly id: number;
  readonly parent: number;
  /** The mounted folder inside its filesystem (a bind mount's source path, `/` otherwise). */
  readonly root: string;
  readonly mountPoint: string;
  /** Per-mount options (rw/ro, nosuid, ...). */
  readonly options: readonly string[];
  readonly fsType: string;
  readonly source: string;
}

export type Storage =
  /** tmpfs or a Kubernetes emptyDir: everything on it is gone with the container (or the pod) */
  | 'scratch'
  /** the container's root filesystem: the image, plus what the app changed in its writable layer */
  | 'root'
  /** any other writable mount (a volume): outlives the container; stasis never writes there */
  | 'volume'
  /** read-only mounts and kernel filesystems (proc, sysfs, devices): nothing the app can have changed */
  | 'fixed';

/** Kernel filesystems: their "files" are made by the kernel in every container. */
const KERNEL_FS = new Set([
  'proc', 'sysfs', 'devtmpfs', 'devpts', 'mqueue', 'cgroup', 'cgroup2', 'securityfs', 'debugfs', 'tracefs',
  'bpf', 'pstore', 'hugetlbfs', 'fusectl', 'configfs', 'binfmt_misc', 'autofs', 'nsfs', 'efivarfs', 'rpc_pipefs',
]);

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** Pure: the lines of /proc/PID/mountinfo (see proc(5)); malformed lines are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields.length < dash + 3) continue;
    const [id, parent, , root, mountPoint, options] = fields;
    if (id === undefined || parent === undefined || root === undefined || mountPoint === undefined || options === undefined) continue;
    mounts.push({
      id: Number(id),
      parent: Number(parent),
      root: unescape(root),
      mountPoint: unescape(mountPoint),
      options: options.split(','),
      fsType: fields[dash + 1] as string,
      source: unescape(fields[dash + 2] as string),
    });
  }
  return mounts;
}

/** Pure: what kind of storage one mount is. */
export function classifyMount(mount: MountEntry): Storage {
  if (mount.options.includes('ro') || KERNEL_FS.has(mount.fsType)) return 'fixed';
  if (mount.mountPoint === '/') return 'root';
  // An emptyDir is a bind mount from the kubelet's pod folder (or a tmpfs): the next pod gets a new one.
  if (mount.fsType === 'tmpfs' || mount.fsType === 'ramfs' || mount.root.includes('/kubernetes.io~empty-dir/')) return 'scratch';
  return 'volume';
}

function within(path: string, mountPoint: string): boolean {
  return mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
}

/**
 * Pure: the mount an absolute, normalised path lives on: the deepest mount point
 * above it; of mounts on the same point the last one (mountinfo lists them in
 * mount order, and the newest hides the others).
 */
export function mountOf(path: string, mounts: readonly MountEntry[]): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const mount of mounts) {
    if (!within(path, mount.mountPoint)) continue;
    if (best === undefined || mount.mountPoint.length >= best.mountPoint.length) best = mount;
  }
  return best;
}

/** Pure: the storage of a path; a path outside every mount (none in practice) is left alone. */
export function storageOf(path: string, mounts: readonly MountEntry[]): Storage {
  const mount = mountOf(path, mounts);
  return mount === undefined ? 'fixed' : classifyMount(mount);
}

export function isEphemeral(storage: Storage): boolean {
  return storage === 'scratch' || storage === 'root';
}

export function readMounts(): MountEntry[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}
