/**
 * Part 4 (issue 8): lazy against eager restore of the slow warm-up app
 * (`apps/warm.c`), for several heap sizes: container start to the first HTTP 200,
 * container start until every page is in (lazy: stasis's "lazy restore complete"
 * line; eager: "restored"), and the peak RSS (VmHWM) of the criu lazy-pages daemon.
 * One checkpoint per size; before each restore its images are evicted from the page
 * cache (another node, or a long time later). HTTP is served on an abstract unix
 * socket: CRIU 4.1.1 cannot dump TCP sockets on Linux >= 6.16 (see warmup.ts), and
 * the transport does not change what is compared here.
 */
import { readFileSync, rmSync, statfsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { stasisEnv, type Setup } from './lib/setup.ts';
import { childrenOf, Container, evict, filesIn, poll, round, sleep } from './lib/proc.ts';

export interface LazyOptions {
  /** heap sizes in MiB */
  readonly sizes: readonly number[];
  /** the app's warm-up (it also fills its heap during it) */
  readonly seconds: number;
}

export interface LazySizeResult {
  readonly mib: number;
  readonly image_bytes: number;
  readonly cold_ms: number;
  readonly dump_ms: number;
  /** container start to the first HTTP 200 */
  readonly eager_first_200_ms: number;
  readonly lazy_first_200_ms: number;
  /** container start until the whole memory is in: eager "restored", lazy "lazy restore complete" */
  readonly eager_all_in_ms: number;
  readonly lazy_all_in_ms: number;
  /** the lazy-pages daemon's own run, as stasis logs it (daemon start to exit) */
  readonly lazy_daemon_ms: number;
  /** peak RSS (VmHWM) of the lazy-pages daemon */
  readonly lazy_daemon_peak_rss_kib: number | null;
}

export interface LazyResults {
  readonly warmup_s: number;
  readonly sizes: LazySizeResult[];
}

const MIB = 1 << 20;

function get(name: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request({ socketPath: `\0${name}`, path: '/', agent: false, headers: { connection: 'close' }, timeout: 60_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Starts a container and polls HTTP every 10 ms; ms from container start to the first 200. */
async function untilServing(argv: readonly string[], env: NodeJS.ProcessEnv, socket: string, timeoutMs: number): Promise<{ container: Container; ms: number }> {
  const container = new Container(argv, env);
  try {
    await poll(`HTTP 200 on unix:@${socket}`, async () => ((await get(socket)) === 200 ? true : undefined), timeoutMs, 10);
  } catch (error) {
    await container.kill();
    throw new Error(`${(error as Error).message}; stasis's log:\n${container.tail()}`);
  }
  return { container, ms: round(performance.now() - container.started) };
}

async function stop(container: Container): Promise<void> {
  await container.signal('SIGTERM');
  await poll('stasis to exit after SIGTERM', () => (container.child.exitCode === null ? undefined : true), 60_000);
}

/** Samples the VmHWM of the lazy-pages daemon below the container's init until stopped; its peak in KiB. */
function watchDaemonMemory(container: Container): () => Promise<number | null> {
  let running = true;
  let peak: number | null = null;
  const loop = (async () => {
    const init = await container.initPid();
    while (running) {
      for (const pid of childrenOf(init)) {
        try {
          if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('lazy-pages')) continue;
          const hwm = Number(/^VmHWM:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
          if (Number.isFinite(hwm)) peak = Math.max(peak ?? 0, hwm);
        } catch {
          // gone meanwhile
        }
      }
      await sleep(10);
    }
  })();
  return async () => {
    running = false;
    await loop;
    return peak;
  };
}

/** The images need their own size on the disk; refuse clearly instead of filling it. */
function checkSpace(dir: string, mib: number): void {
  const info = statfsSync(dir);
  const free = info.bavail * info.bsize;
  const need = mib * MIB * 1.2 + 1024 * MIB;
  if (free < need) throw new Error(`${(free / 2 ** 30).toFixed(1)} GiB free in ${dir}, a ${mib} MiB checkpoint needs about ${(need / 2 ** 30).toFixed(1)} GiB`);
}

async function measureSize(setup: Setup, mib: number, seconds: number, workDir: string): Promise<LazySizeResult> {
  const dir = join(workDir, `lazy-${mib}`);
  rmSync(dir, { recursive: true, force: true });
  checkSpace(workDir, mib);
  const socket = `stasis-bench-lazy-${process.pid}`;
  const env = stasisEnv(setup, dir);
  const argv = [setup.stasis.path, '--', setup.apps.warm, String(mib), String(seconds), `unix:@${socket}`];
  // filling memory runs at ~100-250 MB/s on the development VMs
  const timeoutMs = seconds * 1000 * 10 + (mib / 50) * 1000 + 60_000;
  try {
    console.error(`bench: part 4 - ${mib} MiB: cold start and dump`);
    const cold = await untilServing(argv, env, socket, timeoutMs);
    await cold.container.signal('SIGUSR2');
    const { event: dumped } = await cold.container.waitForEvent('dump committed', 900_000);
    const code = await cold.container.done;
    if (code !== 0) throw new Error(`stasis exited ${code} after the dump: ${cold.container.tail()}`);
    const images = filesIn(String(dumped.path));

    console.error(`bench: part 4 - ${mib} MiB: eager restore (images evicted)`);
    await evict(images);
    const eager = await untilServing(argv, env, socket, timeoutMs);
    const { atMs: eagerAllIn } = await eager.container.waitForEvent('restored', timeoutMs);
    await stop(eager.container);

    console.error(`bench: part 4 - ${mib} MiB: lazy restore (images evicted)`);
    await evict(images);
    const lazyEnv = { ...env, STASIS_LAZY: 'true' };
    const lazy = new Container(argv, lazyEnv);
    const peakRss = watchDaemonMemory(lazy);
    let firstMs: number;
    try {
      await poll(`HTTP 200 on unix:@${socket}`, async () => ((await get(socket)) === 200 ? true : undefined), timeoutMs, 10);
      firstMs = round(performance.now() - lazy.started);
    } catch (error) {
      await peakRss();
      await lazy.kill();
      throw new Error(`${(error as Error).message}; stasis's log:\n${lazy.tail()}`);
    }
    const { event: restored } = await lazy.waitForEvent('restored', timeoutMs);
    if (restored.lazy !== true) throw new Error(`the restore was not lazy: ${lazy.tail()}`);
    const { event: complete, atMs: lazyAllIn } = await lazy.waitForEvent('lazy restore complete: every page is in', timeoutMs);
    const peak = await peakRss();
    await stop(lazy);
    return {
      mib,
      image_bytes: Number(dumped.bytes),
      cold_ms: cold.ms,
      dump_ms: Number(dumped.duration_ms),
      eager_first_200_ms: eager.ms,
      lazy_first_200_ms: firstMs,
      eager_all_in_ms: round(eagerAllIn),
      lazy_all_in_ms: round(lazyAllIn),
      lazy_daemon_ms: Number(complete.duration_ms),
      lazy_daemon_peak_rss_kib: peak,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchLazy(setup: Setup, options: LazyOptions, workDir: string): Promise<LazyResults> {
  const sizes: LazySizeResult[] = [];
  for (const mib of options.sizes) sizes.push(await measureSize(setup, mib, options.seconds, workDir));
  return { warmup_s: options.seconds, sizes };
}
