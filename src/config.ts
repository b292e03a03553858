import { MAX_TIMER_MS, parseDuration } from './duration.js';
import { isForwardable, parseSignal } from './signals.js';
import { splitWords } from './words.js';
import { parseStoreUrl, STORE_URL_ALLOWED, type StoreLocation } from './store/location.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  readonly dir: string | null;
  readonly dumpSignal: number | null;
  readonly afterDump: 'continue' | 'exit';
  readonly checkpointOnTerm: boolean;
  readonly interval: number | null;
  readonly socket: string;
  readonly keep: number;
  readonly onRestoreFailure: 'fresh' | 'exit';
  readonly minPid: number;
  readonly criu: string;
  readonly criuDumpOpts: readonly string[];
  readonly criuRestoreOpts: readonly string[];
  readonly criuTimeout: number | null;
  readonly lazy: boolean;
  readonly tcp: 'established' | 'close' | 'off';
  readonly fileLocks: boolean;
  readonly extUnixSockets: boolean;
  readonly preserve: readonly string[];
  readonly preserveExclude: readonly string[];
  readonly preserveLimit: number;
  readonly ghostLimit: number;
  readonly appVersion: string;
  readonly logLevel: LogLevel;
  readonly logFormat: 'json' | 'pretty' | 'auto';
  readonly signalGroup: boolean;
  readonly rewrite: ReadonlyMap<number, number>;
  readonly remapExit: ReadonlyMap<number, number>;
  readonly subreaper: boolean;
  readonly grace: number;
  readonly store: StoreLocation | null;
  readonly storeTemplate: StoreLocation | null;
  readonly s3Endpoint: string | null;
  readonly compress: 'zstd' | 'none';
  readonly compressLevel: number;
  readonly encryptionKeyFile: string | null;
}

/** A bad value: names where it came from, what it was and what is allowed. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly value: string,
    readonly allowed: string,
  ) {
    super(`${source}=${JSON.stringify(value)} is not valid: expected ${allowed}`);
    this.name = 'ConfigError';
  }
}

/** Thrown by a parser; the caller adds the variable name and the raw value. */
class Invalid extends Error {
  constructor(readonly allowed: string) {
    super(allowed);
  }
}

type Kind = 'value' | 'bool';

export interface OptionSpec<K extends keyof Config = keyof Config> {
  readonly key: K;
  readonly env: string;
  readonly flag: string;
  readonly kind: Kind;
  readonly valueName: string;
  readonly description: string;
  readonly defaultText: string;
  readonly parse: (raw: string) => Config[K];
}

function oneOf<T extends string>(allowed: readonly T[]) {
  return (raw: string): T => {
    const value = raw.trim().toLowerCase();
    if ((allowed as readonly string[]).includes(value)) return value as T;
    throw new Invalid(`one of ${allowed.join(', ')}`);
  };
}

export function parseBool(raw: string): boolean {
  const value = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new Invalid('true or false (also 1/0, yes/no, on/off)');
}

function integer(min: number, max: number) {
  return (raw: string): number => {
    const value = raw.trim();
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new Invalid(`a whole number from ${min} to ${max}`);
    }
    return Number(value);
  };
}

function duration(allowZero: boolean) {
  return (raw: string): number => {
    const ms = parseDuration(raw);
    if (ms === undefined || (!allowZero && ms === 0)) {
      throw new Invalid(`a ${allowZero ? '' : 'positive '}duration such as 500ms, 5s, 2m or 1h (a bare number means seconds)`);
    }
    return ms;
  };
}

/** STASIS_INTERVAL and STASIS_CRIU_TIMEOUT: a timer's delay, or null for "off". */
function optionalDuration(raw: string): number | null {
  if (raw.trim() === '' || raw.trim().toLowerCase() === 'off') return null;
  const ms = parseDuration(raw);
  // Node timers hold at most 2^31-1 ms; a longer delay would fire every millisecond.
  if (ms === undefined || ms < 1000 || ms > MAX_TIMER_MS) throw new Invalid('a duration of at least 1s and at most 596h such as 30s, 5m or 1h, or "off"');
  return ms;
}

function absolutePath(raw: string): string {
  if (!raw.startsWith('/')) throw new Invalid('an absolute path');
  return raw;
}

function nonEmpty(raw: string): string {
  if (raw.trim() === '') throw new Invalid('a non-empty value');
  return raw;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, kib: 2 ** 10, m: 2 ** 20, mib: 2 ** 20, g: 2 ** 30, gib: 2 ** 30 };

/** `256MiB`, `64M`, `1.5GiB`, `4096` (bytes); K, M and G are powers of 1024, as criu reads them. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = SIZE_UNITS[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined) return undefined;
  return Math.round(Number(match[1]) * unit);
}

function size(max: number, maxText: string) {
  return (raw: string): number => {
    const bytes = parseSize(raw);
    if (bytes === undefined || bytes > max) throw new Invalid(`a size such as 64MiB, 512K or 1G (K, M, G = KiB, MiB, GiB; a bare number means bytes) of at most ${maxText}`);
    return bytes;
  };
}

function pathList(allowGlobs: boolean) {
  const allowed = allowGlobs
    ? 'comma-separated absolute paths or globs such as /tmp/cache,/var/tmp/*.tmp,**/*.pid'
    : 'comma-separated absolute paths such as /var/lib/app/db.sqlite,/var/spool/app';
  return (raw: string): string[] => {
    if (raw.trim() === '') return [];
    const items = raw.split(',').map((item) => item.trim());
    if (items.some((item) => !(item.startsWith('/') || (allowGlobs && item.startsWith('**/'))))) throw new Invalid(allowed);
    return items;
  };
}

function optionalDir(raw: string): string | null {
  if (raw === '') return null;
  if (!raw.startsWith('/')) throw new Invalid('an absolute path (or empty for no checkpoints)');
  return raw;
}

function storeUrl(raw: string): StoreLocation | null {
  if (raw.trim() === '') return null;
  const location = parseStoreUrl(raw);
  if (location === undefined) throw new Invalid(`${STORE_URL_ALLOWED}, or empty for none`);
  return location;
}

function endpointUrl(raw: string): string | null {
  if (raw.trim() === '') return null;
  const url = URL.canParse(raw.trim()) ? new URL(raw.trim()) : null;
  if (url === null || !['http:', 'https:'].includes(url.protocol) || url.host === '') throw new Invalid('an http:// or https:// URL such as http://minio.storage:9000, or empty for AWS S3');
  return raw.trim().replace(/\/+$/, '');
}

function optionalFile(raw: string): string | null {
  if (raw === '') return null;
  if (!raw.startsWith('/')) throw new Invalid('an absolute path (or empty for no encryption)');
  return raw;
}

function words(raw: string): string[] {
  const result = splitWords(raw);
  if (result === undefined) throw new Invalid('options split like shell words, with matching quotes');
  return result;
}

function dumpSignal(raw: string): number | null {
  if (raw.trim().toLowerCase() === 'none') return null;
  const number = parseSignal(raw);
  if (number === undefined || !isForwardable(number)) {
    throw new Invalid('a catchable signal name or number such as USR2, SIGUSR1 or 12, or "none"');
  }
  return number;
}

/** `TERM:QUIT,USR1:0` - rewrite a received signal before it is forwarded; 0 drops it. */
export function parseRewrite(raw: string): Map<number, number> {
  const allowed = 'comma-separated FROM:TO signal pairs such as TERM:QUIT,USR1:0 (TO 0 drops the signal)';
  const map = new Map<number, number>();
  if (raw.trim() === '') return map;
  for (const pair of raw.split(',')) {
    const [from, to, extra] = pair.split(':');
    if (from === undefined || to === undefined || extra !== undefined) throw new Invalid(allowed);
    const fromNumber = parseSignal(from);
    const toNumber = to.trim() === '0' ? 0 : parseSignal(to);
    if (fromNumber === undefined || toNumber === undefined || !isForwardable(fromNumber)) throw new Invalid(allowed);
    map.set(fromNumber, toNumber);
  }
  return map;
}

/** `143,130:1` - exit code 143 becomes 0, 130 becomes 1 (like tini -e, generalised). */
export function parseRemapExit(raw: string): Map<number, number> {
  const allowed = 'comma-separated exit codes 0-255, each optionally FROM:TO, such as 143 or 143:0,130:1';
  const map = new Map<number, number>();
  if (raw.trim() === '') return map;
  for (const item of raw.split(',')) {
    const match = /^\s*(\d{1,3})\s*(?::\s*(\d{1,3})\s*)?$/.exec(item);
    const from = Number(match?.[1]);
    const to = Number(match?.[2] ?? '0');
    if (!match || from > 255 || to > 255) throw new Invalid(allowed);
    map.set(from, to);
  }
  return map;
}

function spec<K extends keyof Config>(s: OptionSpec<K>): OptionSpec<K> {
  return s;
}

/** Every option: its env var, its flag, its default. Drives parsing, --help and the README table. */
export const OPTIONS = [
  spec({ key: 'dir', env: 'STASIS_DIR', flag: 'dir', kind: 'value', valueName: 'path', defaultText: '(unset)', parse: optionalDir,
    description: 'checkpoint directory; unset = plain init, no checkpoint features' }),
  spec({ key: 'dumpSignal', env: 'STASIS_DUMP_SIGNAL', flag: 'dump-signal', kind: 'value', valueName: 'signal', defaultText: 'USR2', parse: dumpSignal,
    description: 'signal that makes stasis dump the app (not forwarded); "none" disables' }),
  spec({ key: 'afterDump', env: 'STASIS_AFTER_DUMP', flag: 'after-dump', kind: 'value', valueName: 'mode', defaultText: 'exit', parse: oneOf(['continue', 'exit'] as const),
    description: 'after a dump: "continue" (app keeps running) or "exit" (app ends, stasis exits 0)' }),
  spec({ key: 'checkpointOnTerm', env: 'STASIS_CHECKPOINT_ON_TERM', flag: 'checkpoint-on-term', kind: 'bool', valueName: 'bool', defaultText: 'false', parse: parseBool,
    description: 'on SIGTERM dump first (exit mode), then exit 0; if the dump fails, forward SIGTERM' }),
  spec({ key: 'interval', env: 'STASIS_INTERVAL', flag: 'interval', kind: 'value', valueName: 'duration', defaultText: '(off)', parse: optionalDuration,
    description: 'also dump every DURATION with the app kept running (a tick is skipped while a dump runs)' }),
  spec({ key: 'socket', env: 'STASIS_SOCKET', flag: 'socket', kind: 'value', valueName: 'path', defaultText: '/dev/shm/stasis.sock', parse: absolutePath,
    description: 'control socket (owner-only) that `stasis checkpoint` talks to' }),
  spec({ key: 'keep', env: 'STASIS_KEEP', flag: 'keep', kind: 'value', valueName: 'n', defaultText: '2', parse: integer(1, 1000),
    description: 'checkpoint generations kept; restore falls back to older ones' }),
  spec({ key: 'onRestoreFailure', env: 'STASIS_ON_RESTORE_FAILURE', flag: 'on-restore-failure', kind: 'value', valueName: 'mode', defaultText: 'fresh', parse: oneOf(['fresh', 'exit'] as const),
    description: '"fresh" (quarantine the generation, try older ones, then start fresh) or "exit" (exit 3)' }),
  spec({ key: 'minPid', env: 'STASIS_MIN_PID', flag: 'min-pid', kind: 'value', valueName: 'pid', defaultText: '10000', parse: integer(0, 4194303),
    description: 'PID floor for a freshly started app, so its PIDs are free in the next container; 0 = off' }),
  spec({ key: 'criu', env: 'STASIS_CRIU', flag: 'criu', kind: 'value', valueName: 'path', defaultText: 'criu', parse: nonEmpty,
    description: 'criu binary (looked up in PATH)' }),
  spec({ key: 'criuDumpOpts', env: 'STASIS_CRIU_DUMP_OPTS', flag: 'criu-dump-opts', kind: 'value', valueName: 'opts', defaultText: '(none)', parse: words,
    description: 'extra criu dump options, split like shell words (no shell runs)' }),
  spec({ key: 'criuRestoreOpts', env: 'STASIS_CRIU_RESTORE_OPTS', flag: 'criu-restore-opts', kind: 'value', valueName: 'opts', defaultText: '(none)', parse: words,
    description: 'extra criu restore options, split like shell words (no shell runs)' }),
  spec({ key: 'criuTimeout', env: 'STASIS_CRIU_TIMEOUT', flag: 'criu-timeout', kind: 'value', valueName: 'duration', defaultText: '10m', parse: optionalDuration,
    description: 'longest a criu dump or restore may run before it is killed: the dump fails and the app runs on, the restore fails and what it restored is killed; "off" waits for ever' }),
  spec({ key: 'lazy', env: 'STASIS_LAZY', flag: 'lazy', kind: 'bool', valueName: 'bool', defaultText: 'false', parse: parseBool,
    description: 'lazy restore: the app runs at once and a criu lazy-pages daemon copies its memory in on demand and in the background; a normal restore where the kernel or criu cannot' }),
  spec({ key: 'tcp', env: 'STASIS_TCP', flag: 'tcp', kind: 'value', valueName: 'mode', defaultText: 'off', parse: oneOf(['established', 'close', 'off'] as const),
    description: 'open TCP connections: "established" (--tcp-established), "close" (--tcp-close) or "off" (dump fails on them)' }),
  spec({ key: 'fileLocks', env: 'STASIS_FILE_LOCKS', flag: 'file-locks', kind: 'bool', valueName: 'bool', defaultText: 'false', parse: parseBool,
    description: 'dump and restore file locks the app holds (criu --file-locks)' }),
  spec({ key: 'extUnixSockets', env: 'STASIS_EXT_UNIX_SK', flag: 'ext-unix-sk', kind: 'bool', valueName: 'bool', defaultText: 'false', parse: parseBool,
    description: 'allow unix sockets connected outside the app (criu --ext-unix-sk)' }),
  spec({ key: 'preserve', env: 'STASIS_PRESERVE', flag: 'preserve', kind: 'value', valueName: 'paths', defaultText: '(none)', parse: pathList(false),
    description: "also save these files or whole folders into every generation, PATH[,PATH...] (e.g. a SQLite file the app does not keep open); what the app holds open or mapped on the container's own filesystem is saved without this" }),
  spec({ key: 'preserveExclude', env: 'STASIS_PRESERVE_EXCLUDE', flag: 'preserve-exclude', kind: 'value', valueName: 'globs', defaultText: '(none)', parse: pathList(true),
    description: 'never save files matching these globs, GLOB[,GLOB...] (a folder excludes all below it; an excluded file the app holds must exist in the next container)' }),
  spec({ key: 'preserveLimit', env: 'STASIS_PRESERVE_LIMIT', flag: 'preserve-limit', kind: 'value', valueName: 'size', defaultText: '256MiB', parse: size(2 ** 40, '1TiB'),
    description: 'most bytes of saved files per generation; over it the dump fails naming the biggest files, the app runs on' }),
  spec({ key: 'ghostLimit', env: 'STASIS_GHOST_LIMIT', flag: 'ghost-limit', kind: 'value', valueName: 'size', defaultText: '64MiB', parse: size(2 ** 31, '2GiB'),
    description: 'largest deleted-but-open file criu saves inside the images (criu --ghost-limit); a bigger one fails the dump' }),
  spec({ key: 'appVersion', env: 'STASIS_APP_VERSION', flag: 'app-version', kind: 'value', valueName: 'text', defaultText: '(empty)', parse: (raw) => raw,
    description: 'part of the app fingerprint: a checkpoint of another version is never restored' }),
  spec({ key: 'logLevel', env: 'STASIS_LOG_LEVEL', flag: 'log-level', kind: 'value', valueName: 'level', defaultText: 'info', parse: oneOf(LOG_LEVELS),
    description: `stasis's own log level: ${LOG_LEVELS.join(', ')}` }),
  spec({ key: 'logFormat', env: 'STASIS_LOG_FORMAT', flag: 'log-format', kind: 'value', valueName: 'format', defaultText: 'auto', parse: oneOf(['json', 'pretty', 'auto'] as const),
    description: '"json" lines, "pretty" text, or "auto" (pretty when stderr is a tty)' }),
  spec({ key: 'signalGroup', env: 'STASIS_SIGNAL_GROUP', flag: 'signal-group', kind: 'bool', valueName: 'bool', defaultText: 'false', parse: parseBool,
    description: "forward signals to the app's whole process group, not only the app" }),
  spec({ key: 'rewrite', env: 'STASIS_REWRITE', flag: 'rewrite', kind: 'value', valueName: 'map', defaultText: '(none)', parse: parseRewrite,
    description: 'rewrite signals before forwarding, FROM:TO[,FROM:TO...]; TO 0 drops (like dumb-init -r)' }),
  spec({ key: 'remapExit', env: 'STASIS_REMAP_EXIT', flag: 'remap-exit', kind: 'value', valueName: 'codes', defaultText: '(none)', parse: parseRemapExit,
    description: 'remap exit codes, CODE[:TO][,...]; TO defaults to 0 (like tini -e)' }),
  spec({ key: 'subreaper', env: 'STASIS_SUBREAPER', flag: 'subreaper', kind: 'bool', valueName: 'bool', defaultText: 'true', parse: parseBool,
    description: 'become a child subreaper when not PID 1, so orphans are adopted and reaped' }),
  spec({ key: 'grace', env: 'STASIS_GRACE', flag: 'grace', kind: 'value', valueName: 'duration', defaultText: '5s', parse: duration(true),
    description: 'after the app exits: time left processes get between SIGTERM and SIGKILL' }),
  spec({ key: 'store', env: 'STASIS_STORE', flag: 'store', kind: 'value', valueName: 'url', defaultText: '(unset)', parse: storeUrl,
    description: 'also keep generations in S3-compatible object storage, s3://BUCKET/PREFIX ({hostname} in PREFIX = the host name); STASIS_DIR is the local staging; restore downloads when STASIS_DIR has none' }),
  spec({ key: 'storeTemplate', env: 'STASIS_STORE_TEMPLATE', flag: 'store-template', kind: 'value', valueName: 'url', defaultText: '(unset)', parse: storeUrl,
    description: "read-only s3://BUCKET/PREFIX restored from when STASIS_STORE's prefix has no generation of this app (checkpoint once, restore many)" }),
  spec({ key: 's3Endpoint', env: 'STASIS_S3_ENDPOINT', flag: 's3-endpoint', kind: 'value', valueName: 'url', defaultText: '(AWS S3)', parse: endpointUrl,
    description: 'S3 endpoint of a non-AWS store (Ceph RGW, MinIO, GCS), addressed path-style; region from AWS_REGION, credentials by the AWS SDK default chain' }),
  spec({ key: 'compress', env: 'STASIS_COMPRESS', flag: 'compress', kind: 'value', valueName: 'mode', defaultText: 'zstd', parse: oneOf(['zstd', 'none'] as const),
    description: 'compression of objects uploaded to the store: "zstd" (files whose samples it does not shrink are stored as they are) or "none"' }),
  spec({ key: 'compressLevel', env: 'STASIS_COMPRESS_LEVEL', flag: 'compress-level', kind: 'value', valueName: 'n', defaultText: '3', parse: integer(1, 19),
    description: 'zstd level for uploads, 1 (fastest) to 19 (smallest)' }),
  spec({ key: 'encryptionKeyFile', env: 'STASIS_ENCRYPTION_KEY_FILE', flag: 'encryption-key-file', kind: 'value', valueName: 'path', defaultText: '(none)', parse: optionalFile,
    description: 'file with an AES-256 key (32 bytes, 64 hex digits or base64), e.g. a mounted Secret: objects in the store are encrypted with AES-256-GCM' }),
] as const;

export type Flags = Readonly<Record<string, string | boolean | undefined>>;

/**
 * Builds the one validated Config: defaults, then env vars, then flags (flags win).
 * Throws ConfigError naming the variable or flag on the first bad value.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, flags: Flags = {}): Config {
  const values: Record<string, unknown> = {};
  for (const option of OPTIONS as readonly OptionSpec[]) {
    const flagKey = camel(option.flag);
    const flag = flags[flagKey];
    const [source, raw] =
      flag !== undefined
        ? [`--${option.flag}`, typeof flag === 'boolean' ? String(flag) : flag]
        : env[option.env] !== undefined
          ? [option.env, env[option.env] as string]
          : ['default', defaultRaw(option)];
    try {
      values[option.key] = option.parse(raw);
    } catch (error) {
      if (error instanceof Invalid) throw new ConfigError(source, raw, error.allowed);
      throw error;
    }
  }
  return Object.freeze(values as unknown as Config);
}

/**
 * The run's options that only work together: a store needs STASIS_DIR (its local
 * staging), a template needs the pod's own store. Throws ConfigError naming the option.
 */
export function checkCombinations(config: Config, env: Readonly<Record<string, string | undefined>>, flags: Flags = {}): void {
  const origin = (flag: string, name: string): [string, string] =>
    flags[camel(flag)] !== undefined ? [`--${flag}`, String(flags[camel(flag)])] : [name, env[name] ?? ''];
  if (config.store !== null && config.dir === null) {
    const [source, raw] = origin('store', 'STASIS_STORE');
    throw new ConfigError(source, raw, 'STASIS_DIR to be set too (the local staging of every generation)');
  }
  if (config.storeTemplate !== null && config.store === null) {
    const [source, raw] = origin('store-template', 'STASIS_STORE_TEMPLATE');
    throw new ConfigError(source, raw, 'STASIS_STORE to be set too (the prefix this pod writes its own generations to)');
  }
}

function defaultRaw(option: OptionSpec): string {
  return option.defaultText.startsWith('(') ? '' : option.defaultText;
}

export function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
