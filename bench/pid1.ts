/**
 * Part 1: stasis as a PID 1 next to tini, dumb-init and bare Node - start-to-exit,
 * idle memory, reaping orphans, signal forwarding latency.
 */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import type { Setup } from './lib/setup.ts';
import { childrenOf, Container, evict, median, memoryKiB, namespaceInit, percentile, poll, round, run, sleep, UNSHARE } from './lib/proc.ts';

export interface Pid1Options {
  readonly hyperfineRounds: number;
  /** per round */
  readonly hyperfineRuns: number;
  readonly hyperfineWarmup: number;
  readonly rssReps: number;
  readonly rssSettleMs: number;
  readonly orphans: number;
  readonly orphanReps: number;
  readonly signals: number;
  readonly signalRounds: number;
}

export interface Timing {
  readonly median_ms: number;
  readonly mean_ms: number;
  readonly stddev_ms: number;
  readonly min_ms: number;
  readonly runs: number;
}

export interface Pid1Results {
  /** `X -- true` start to exit: plain (a child of the bench) and as PID 1 of a new PID namespace */
  readonly startup: { readonly plain: Record<string, Timing>; readonly pid1: Record<string, Timing> };
  /** idle init while its app sleeps, KiB (median of reps) */
  readonly rss: Record<string, { readonly rss_kib: number; readonly pss_kib: number }>;
  readonly reap: { readonly n: number; readonly reps: number; readonly median_ms: Record<string, number>; readonly all_ms: Record<string, number[]> };
  readonly signals: Record<string, { readonly n: number; readonly p50_us: number; readonly p99_us: number; readonly max_us: number }>;
}

type Inits = Record<string, readonly string[]>;

/** The inits under test, each as argv before `-- APP...`. */
function inits(setup: Setup): Inits {
  return { tini: ['tini'], 'dumb-init': ['dumb-init'], stasis: [setup.stasis.path] };
}

/** One hyperfine run over `commands`; returns each command's run times in ms. */
async function hyperfine(setup: Setup, options: Pid1Options, commands: Record<string, string>, exportPath: string): Promise<Record<string, number[]>> {
  const args = ['-N', '--style', 'basic', '--warmup', String(options.hyperfineWarmup), '--runs', String(options.hyperfineRuns), '--export-json', exportPath];
  for (const [name, command] of Object.entries(commands)) args.push('-n', name, command);
  await run('hyperfine', args, { env: setup.env, timeoutMs: 600_000 });
  const exported = JSON.parse(readFileSync(exportPath, 'utf8')) as { results: { command: string; times: number[] }[] };
  return Object.fromEntries(exported.results.map((result) => [result.command, result.times.map((seconds) => seconds * 1000)]));
}

function timing(times: readonly number[]): Timing {
  const mean = times.reduce((sum, t) => sum + t, 0) / times.length;
  const variance = times.reduce((sum, t) => sum + (t - mean) ** 2, 0) / Math.max(1, times.length - 1);
  return { median_ms: round(median(times), 2), mean_ms: round(mean, 2), stddev_ms: round(Math.sqrt(variance), 2), min_ms: round(Math.min(...times), 2), runs: times.length };
}

/**
 * hyperfine in rounds, plain and as PID 1 alternating, so a change in the machine's
 * load hits every command alike; the exports of every round are kept.
 */
async function startup(setup: Setup, options: Pid1Options, outDir: string): Promise<Pid1Results['startup']> {
  const plain: Record<string, string> = { tini: 'tini -s -- true', 'dumb-init': 'dumb-init -- true', stasis: `${setup.stasis.path} -- true`, 'node -e 0': `${setup.node} -e 0` };
  const pid1 = Object.fromEntries(Object.entries(plain).map(([name, command]) => [name, `${UNSHARE.join(' ')} ${command.replace(' -s --', ' --')}`]));
  const dir = join(outDir, 'hyperfine');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const times = { plain: {} as Record<string, number[]>, pid1: {} as Record<string, number[]> };
  for (let r = 1; r <= options.hyperfineRounds; r++) {
    for (const [mode, commands] of [['plain', plain], ['pid1', pid1]] as const) {
      const result = await hyperfine(setup, options, commands, join(dir, `${mode}-${r}.json`));
      for (const [name, list] of Object.entries(result)) (times[mode][name] ??= []).push(...list);
    }
  }
  const summarize = (record: Record<string, number[]>): Record<string, Timing> => Object.fromEntries(Object.entries(record).map(([name, list]) => [name, timing(list)]));
  return { plain: summarize(times.plain), pid1: summarize(times.pid1) };
}

/**
 * RSS of an idle PID 1 whose app sleeps; for bare Node, Node itself idles as PID 1.
 * 'stasis (STASIS_DIR)': with checkpoints on (criu probed, control socket, checkpoint modules loaded).
 */
async function idleMemory(setup: Setup, options: Pid1Options, workDir: string): Promise<Pid1Results['rss']> {
  const dir = join(workDir, 'rss-checkpoints');
  const withDir = ['env', `STASIS_DIR=${dir}`, `STASIS_CRIU=${setup.criu}`, `STASIS_SOCKET=/dev/shm/stasis-bench-rss-${process.pid}.sock`, setup.stasis.path];
  const subjects: Inits = {
    ...Object.fromEntries(Object.entries(inits(setup)).map(([name, argv]) => [name, [...argv, '--', 'sleep', '600']])),
    'stasis (STASIS_DIR)': [...withDir, '--', 'sleep', '600'],
    'idle node': [setup.node, '-e', 'setInterval(() => {}, 1 << 30)'],
  };
  // A binary just written (npm run build) sits in the page cache in large folios, and
  // the SEA maps them whole: its RSS read ~33 MiB higher (84 vs 50 MiB) until evicted.
  await evict([setup.stasis.path]);
  const samples: Record<string, { rss: number; pss: number }[]> = {};
  for (let rep = 0; rep < options.rssReps; rep++) {
    for (const [name, argv] of Object.entries(subjects)) {
      const child = spawn(UNSHARE[0], [...UNSHARE.slice(1), ...argv], { env: setup.env, stdio: 'ignore' });
      const closed = new Promise((resolve) => child.on('close', resolve));
      try {
        const init = await poll(`${name} as PID 1`, () => namespaceInit(child.pid as number), 10_000, 5);
        if (name !== 'idle node') await poll(`the app under ${name}`, () => (childrenOf(init).length > 0 ? true : undefined), 10_000, 5);
        await sleep(options.rssSettleMs);
        (samples[name] ??= []).push(memoryKiB(init));
        process.kill(init, 'SIGKILL');
      } finally {
        child.kill('SIGKILL');
        await closed;
      }
    }
  }
  return Object.fromEntries(
    Object.entries(samples).map(([name, list]) => [name, { rss_kib: median(list.map((s) => s.rss)), pss_kib: median(list.map((s) => s.pss)) }]),
  );
}

/** `orphans N` under each init, reps interleaved so load drifts hit every init alike. */
async function reaping(setup: Setup, options: Pid1Options): Promise<Pid1Results['reap']> {
  const all: Record<string, number[]> = {};
  for (let rep = 0; rep < options.orphanReps; rep++) {
    for (const [name, argv] of Object.entries(inits(setup))) {
      const result = await run(UNSHARE[0], [...UNSHARE.slice(1), ...argv, '--', setup.apps.orphans, String(options.orphans)], { env: setup.env, timeoutMs: 180_000 });
      const line = result.stdout.trim().split('\n').at(-1) ?? '';
      const parsed = JSON.parse(line) as { reap_ms: number };
      (all[name] ??= []).push(round(parsed.reap_ms, 2));
    }
  }
  return {
    n: options.orphans,
    reps: options.orphanReps,
    median_ms: Object.fromEntries(Object.entries(all).map(([name, list]) => [name, median(list)])),
    all_ms: all,
  };
}

/**
 * `sig recv` as the app, `sig send` kills the init's host PID and reads the app's
 * receive time. In rounds, the inits taking turns, so load drifts hit each alike.
 */
async function signalLatency(setup: Setup, options: Pid1Options, workDir: string): Promise<Pid1Results['signals']> {
  const all: Record<string, number[]> = {};
  const perRound = Math.ceil(options.signals / options.signalRounds);
  for (let r = 0; r < options.signalRounds; r++) {
    for (const [name, argv] of Object.entries(inits(setup))) {
      const fifo = join(workDir, `sig-${name}.fifo`);
      rmSync(fifo, { force: true });
      await run('mkfifo', [fifo]);
      const container = new Container([...argv, '--', setup.apps.sig, 'recv', fifo, String(perRound)], setup.env);
      try {
        const init = await container.initPid();
        const sent = await run(setup.apps.sig, ['send', String(init), fifo, String(perRound)], { timeoutMs: 120_000 });
        const latencies = (JSON.parse(sent.stdout) as { latency_us: number[] }).latency_us;
        if (latencies.length !== perRound) throw new Error(`${name}: ${latencies.length} of ${perRound} signals arrived`);
        (all[name] ??= []).push(...latencies);
        await Promise.race([container.done, sleep(10_000)]);
      } finally {
        await container.kill();
        rmSync(fifo, { force: true });
      }
    }
  }
  return Object.fromEntries(
    Object.entries(all).map(([name, list]) => [name, { n: list.length, p50_us: percentile(list, 50), p99_us: percentile(list, 99), max_us: Math.max(...list) }]),
  );
}

export async function benchPid1(setup: Setup, options: Pid1Options, outDir: string, workDir: string): Promise<Pid1Results> {
  console.error('bench: part 1 - start-to-exit (hyperfine)');
  const startupResults = await startup(setup, options, outDir);
  console.error('bench: part 1 - idle memory');
  const rss = await idleMemory(setup, options, workDir);
  console.error(`bench: part 1 - reaping ${options.orphans} orphans`);
  const reap = await reaping(setup, options);
  console.error('bench: part 1 - signal forwarding latency');
  const signals = await signalLatency(setup, options, workDir);
  return { startup: startupResults, rss, reap, signals };
}
