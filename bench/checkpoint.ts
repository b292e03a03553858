/**
 * Part 2: checkpoint and restore of an app holding MIB MiB of non-zero memory,
 * stasis next to raw `criu dump` / `criu restore -d` of the same app and next to the
 * disk's own sequential write (with fsync) and read of the same bytes in the same folder.
 * Restores always read images evicted from the page cache, as after a reschedule.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseStatsImage } from '../src/criu/stats.ts';
import { stasisEnv, type Setup } from './lib/setup.ts';
import { bytesIn, Container, evict, filesIn, isAlive, median, poll, round, run } from './lib/proc.ts';

export interface CheckpointOptions {
  /** heap sizes and how many runs of each (the median is reported) */
  readonly sizes: readonly { readonly mib: number; readonly reps: number }[];
}

interface RawRun {
  readonly bytes: number;
  /** the app's own time to fill its heap (first touch of fresh memory) */
  readonly fill_ms: number;
  readonly dump_ms: number;
  readonly sync_ms: number;
  readonly dump_sync_ms: number;
  readonly freezing_ms: number;
  readonly frozen_ms: number;
  readonly restore_ms: number;
}

interface StasisRun {
  readonly bytes: number;
  readonly fill_ms: number;
  /** SIGUSR2 received to generation committed (criu, fsync, metadata, commit): the times of those two log lines */
  readonly dump_ms: number;
  /** duration_ms of "dump committed": measured before the fsync and the commit */
  readonly logged_duration_ms: number;
  readonly criu_ms: number;
  readonly freezing_ms: number;
  readonly frozen_ms: number;
  /** the criu restore run inside stasis */
  readonly restore_ms: number;
  /** container start to stasis's "restored" log line: what a user waits */
  readonly start_to_restored_ms: number;
}

interface DiskRun {
  readonly write_ms: number;
  readonly read_ms: number;
}

export interface SizeResult {
  readonly mib: number;
  readonly reps: number;
  readonly raw: RawRun;
  readonly stasis: StasisRun;
  readonly disk: DiskRun & { readonly bytes: number };
  /** the heap app filling fresh memory: how fast this machine populates memory at all */
  readonly app_fill_ms: number;
  /** each the median of per-run ratios, stasis against the raw run next to it */
  readonly ratios: {
    /** stasis dump / (raw criu dump + fsync of its images): both durable */
    readonly dump: number;
    /** stasis's criu run / raw criu dump */
    readonly dump_criu: number;
    /** stasis's criu restore run / raw criu restore -d */
    readonly restore: number;
    /** container start to restored / raw criu restore -d */
    readonly start_to_restored: number;
  };
  readonly mb_per_s: {
    readonly stasis_dump: number;
    readonly raw_dump_sync: number;
    readonly disk_write: number;
    readonly stasis_restore: number;
    readonly raw_restore: number;
    readonly disk_read: number;
    readonly app_fill: number;
  };
}

const MS = 1000;

/** FILL_MS out of the heap app's `ready BYTES FILL_MS` line. */
function fillMs(output: string): number {
  const match = /^ready (\d+) ([\d.]+)$/m.exec(output);
  if (!match) throw new Error(`no "ready" line from the heap app: ${output.slice(0, 200)}`);
  return Number(match[2]);
}
const usToMs = (us: number | undefined): number => (us === undefined ? NaN : round(us / MS, 1));

function dumpStats(dir: string): { freezing_ms: number; frozen_ms: number } {
  const path = join(dir, 'stats-dump');
  const stats = existsSync(path) ? parseStatsImage(readFileSync(path)).dump : undefined;
  return { freezing_ms: usToMs(stats?.freezing_time_us), frozen_ms: usToMs(stats?.frozen_time_us) };
}

/** The app in the bench's own PID namespace, dumped and restored by criu directly. */
async function rawRun(setup: Setup, mib: number, workDir: string): Promise<RawRun> {
  const dir = join(workDir, `raw-${mib}`);
  const out = join(workDir, `raw-${mib}.out`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  const fd = openSync(out, 'w');
  const app = spawn(setup.apps.heap, [String(mib)], { detached: true, stdio: ['ignore', fd, fd], env: setup.env });
  closeSync(fd);
  const exited = new Promise((resolve) => app.on('exit', resolve));
  try {
    await poll(`heap ${mib} MiB ready`, () => (readFileSync(out, 'utf8').includes('ready') ? true : undefined), 300_000);
    // --leave-stopped, as stasis does: the kill (freeing the heap) is not part of the dump
    const dump = await run(setup.criu, ['dump', '-t', String(app.pid), '-D', dir, '-o', 'dump.log', '--leave-stopped'], { env: setup.env });
    const sync = await run('sync', [...filesIn(dir), dir]);
    app.kill('SIGKILL');
    await exited;
    const bytes = bytesIn(dir);
    await evict(filesIn(dir));
    const pidfile = join(dir, 'restore.pid');
    const restore = await run(setup.criu, ['restore', '-D', dir, '-d', '--pidfile', pidfile, '-o', 'restore.log'], { env: setup.env });
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    if (!isAlive(pid)) throw new Error(`raw restore of ${mib} MiB: PID ${pid} is not running`);
    process.kill(pid, 'SIGKILL');
    await poll(`restored PID ${pid} to end`, () => (isAlive(pid) ? undefined : true), 10_000);
    return {
      bytes,
      fill_ms: fillMs(readFileSync(out, 'utf8')),
      dump_ms: round(dump.ms),
      sync_ms: round(sync.ms),
      dump_sync_ms: round(dump.ms + sync.ms),
      ...dumpStats(dir),
      restore_ms: round(restore.ms),
    };
  } finally {
    if (app.exitCode === null && app.signalCode === null) app.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    rmSync(out, { force: true });
  }
}

/** stasis as PID 1: SIGUSR2 dumps (exit mode), a second container restores. */
async function stasisRun(setup: Setup, mib: number, workDir: string): Promise<StasisRun> {
  const dir = join(workDir, `stasis-${mib}`);
  rmSync(dir, { recursive: true, force: true });
  const env = stasisEnv(setup, dir);
  const argv = [setup.stasis.path, '--', setup.apps.heap, String(mib)];
  const first = new Container(argv, env);
  try {
    await first.waitForStdout('ready', 300_000);
    await first.signal('SIGUSR2');
    const { event: dumped } = await first.waitForEvent('dump committed', 600_000);
    const received = first.events().find((e) => e.msg === 'signal handled by stasis');
    if (received === undefined) throw new Error(`no "signal handled by stasis" line: ${first.tail()}`);
    const code = await first.done;
    if (code !== 0) throw new Error(`stasis exited ${code} after the dump: ${first.tail()}`);
    await evict(filesIn(String(dumped.path)));
    const second = new Container(argv, env);
    try {
      const { event: restored, atMs } = await second.waitForEvent('restored', 600_000);
      await second.signal('SIGTERM');
      await poll('stasis to exit after SIGTERM', () => (second.child.exitCode === null ? undefined : true), 20_000);
      return {
        bytes: Number(dumped.bytes),
        fill_ms: fillMs(first.stdout),
        dump_ms: Number(dumped.time) - Number(received.time),
        logged_duration_ms: Number(dumped.duration_ms),
        criu_ms: Number(dumped.criu_ms),
        freezing_ms: Number(dumped.freezing_ms),
        frozen_ms: Number(dumped.frozen_ms),
        restore_ms: Number(restored.duration_ms),
        start_to_restored_ms: round(atMs),
      };
    } finally {
      await second.kill();
    }
  } finally {
    await first.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** dd of the same number of bytes into the same folder: write with fsync, then read from the disk. */
async function diskRun(mib: number, workDir: string): Promise<DiskRun> {
  const file = join(workDir, 'dd.bin');
  try {
    const write = await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync', 'status=none']);
    await evict([file]);
    const read = await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none']);
    return { write_ms: round(write.ms), read_ms: round(read.ms) };
  } finally {
    rmSync(file, { force: true });
  }
}

function medianOf<T extends object>(runs: readonly T[]): T {
  const first = runs[0] as T;
  return Object.fromEntries(Object.keys(first).map((key) => [key, median(runs.map((r) => (r as Record<string, number>)[key] as number))])) as T;
}

/** Median over the runs of stasis/raw, each stasis run against the raw run next to it in time (load drifts cancel). */
function pairedRatio(stasis: readonly StasisRun[], raw: readonly RawRun[], a: (run: StasisRun) => number, b: (run: RawRun) => number): number {
  return round(median(stasis.map((run, i) => a(run) / b(raw[i] as RawRun))), 3);
}

const mbPerS = (bytes: number, ms: number): number => round(bytes / 1e6 / (ms / MS), 0);

export async function benchCheckpoint(setup: Setup, options: CheckpointOptions, workDir: string): Promise<SizeResult[]> {
  const results: SizeResult[] = [];
  for (const { mib, reps } of options.sizes) {
    const raws: RawRun[] = [];
    const stasises: StasisRun[] = [];
    const disks: DiskRun[] = [];
    for (let rep = 0; rep < reps; rep++) {
      console.error(`bench: part 2 - ${mib} MiB, run ${rep + 1} of ${reps}`);
      // alternate the order, so a load drift does not always hit the same side
      if (rep % 2 === 0) {
        raws.push(await rawRun(setup, mib, workDir));
        stasises.push(await stasisRun(setup, mib, workDir));
      } else {
        stasises.push(await stasisRun(setup, mib, workDir));
        raws.push(await rawRun(setup, mib, workDir));
      }
      disks.push(await diskRun(mib, workDir));
    }
    const raw = medianOf(raws);
    const stasis = medianOf(stasises);
    const disk = { ...medianOf(disks), bytes: mib * 2 ** 20 };
    const fill = median([...raws, ...stasises].map((r) => r.fill_ms));
    results.push({
      mib,
      reps,
      raw,
      stasis,
      disk,
      app_fill_ms: fill,
      ratios: {
        dump: pairedRatio(stasises, raws, (a) => a.dump_ms, (b) => b.dump_sync_ms),
        dump_criu: pairedRatio(stasises, raws, (a) => a.criu_ms, (b) => b.dump_ms),
        restore: pairedRatio(stasises, raws, (a) => a.restore_ms, (b) => b.restore_ms),
        start_to_restored: pairedRatio(stasises, raws, (a) => a.start_to_restored_ms, (b) => b.restore_ms),
      },
      mb_per_s: {
        stasis_dump: mbPerS(stasis.bytes, stasis.dump_ms),
        raw_dump_sync: mbPerS(raw.bytes, raw.dump_sync_ms),
        disk_write: mbPerS(disk.bytes, disk.write_ms),
        stasis_restore: mbPerS(stasis.bytes, stasis.restore_ms),
        raw_restore: mbPerS(raw.bytes, raw.restore_ms),
        disk_read: mbPerS(disk.bytes, disk.read_ms),
        app_fill: mbPerS(disk.bytes, fill),
      },
    });
  }
  return results;
}
