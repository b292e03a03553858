/**
 * Part 3: an app with a slow warm-up (SECONDS of init work on a MIB MiB heap, then
 * HTTP on loopback). Time from container start to the first HTTP 200: cold start
 * under stasis, then restored by stasis from the checkpoint taken once it served
 * (images evicted from the page cache, then again with them cached).
 *
 * The server listens on 127.0.0.1 when this CRIU can dump a TCP socket (probed
 * first); CRIU 4.1.1 cannot on Linux >= 6.16 (checkpoint-restore/criu#2705), and
 * then the same server listens on an abstract unix socket instead.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { stasisEnv, type Setup } from './lib/setup.ts';
import { Container, evict, filesIn, isAlive, poll, round, run } from './lib/proc.ts';

export interface WarmupOptions {
  readonly mib: number;
  readonly seconds: number;
}

export interface WarmupResults {
  /** where the app served HTTP, and why not TCP when not */
  readonly transport: 'tcp 127.0.0.1' | 'abstract unix socket';
  readonly tcp_dump_error?: string;
  readonly mib: number;
  readonly warmup_s: number;
  readonly cold_ms: number;
  readonly dump_ms: number;
  readonly image_bytes: number;
  /** images evicted from the page cache first (another node, or a long time later) */
  readonly restored_ms: number;
  /** images still in the page cache (restart on the same node right away) */
  readonly restored_cached_ms: number;
  readonly speedup: number;
  readonly speedup_cached: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

type Address = { readonly port: number } | { readonly unix: string };

const appAddress = (address: Address): string => ('port' in address ? `tcp:${address.port}` : `unix:@${address.unix}`);

function get(address: Address): Promise<number | undefined> {
  const target = 'port' in address ? { host: '127.0.0.1', port: address.port } : { socketPath: `\0${address.unix}` };
  return new Promise((resolve) => {
    const req = request({ ...target, path: '/', agent: false, headers: { connection: 'close' }, timeout: 60_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Starts a container and polls HTTP every 10 ms; ms from start to the first 200. */
async function untilServing(argv: readonly string[], env: NodeJS.ProcessEnv, address: Address, timeoutMs: number): Promise<{ container: Container; ms: number }> {
  const container = new Container(argv, env);
  try {
    await poll(`HTTP 200 on ${appAddress(address)}`, async () => ((await get(address)) === 200 ? true : undefined), timeoutMs, 10);
  } catch (error) {
    const exit = container.child.exitCode;
    await container.kill();
    throw new Error(`${(error as Error).message}; the container ${exit === null ? 'was still running' : `had exited with ${exit}`}; stasis's log:\n${container.tail()}`);
  }
  return { container, ms: round(performance.now() - container.started) };
}

/** Can this CRIU dump an app with a listening TCP socket? undefined if yes, else criu's error. */
async function tcpDumpError(setup: Setup, workDir: string): Promise<string | undefined> {
  const address = { port: await freePort() };
  const dir = join(workDir, 'tcp-probe');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const app = spawn(setup.apps.warm, ['1', '0', appAddress(address)], { detached: true, stdio: 'ignore', env: setup.env });
  try {
    await poll('the TCP probe app to serve', async () => ((await get(address)) === 200 ? true : undefined), 10_000);
    const dump = await run(setup.criu, ['dump', '-t', String(app.pid), '-D', dir, '-o', 'dump.log'], { env: setup.env, allowFail: true });
    if (dump.code === 0) return undefined;
    const errors = readFileSync(join(dir, 'dump.log'), 'utf8')
      .split('\n')
      .filter((line) => line.includes('Error') && !line.includes('RLIMIT_NOFILE'));
    return errors.slice(0, 2).map((line) => line.replace(/^\([\d.]+\)\s*/, '')).join('; ') || `criu dump exited ${dump.code}`;
  } finally {
    if (app.pid !== undefined && isAlive(app.pid)) app.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function stop(container: Container): Promise<void> {
  await container.signal('SIGTERM');
  await poll('stasis to exit after SIGTERM', () => (container.child.exitCode === null ? undefined : true), 20_000);
}

export async function benchWarmup(setup: Setup, options: WarmupOptions, workDir: string): Promise<WarmupResults> {
  const dir = join(workDir, 'warmup');
  rmSync(dir, { recursive: true, force: true });
  const tcpError = await tcpDumpError(setup, workDir);
  const address: Address = tcpError === undefined ? { port: await freePort() } : { unix: `stasis-bench-${process.pid}` };
  if (tcpError !== undefined) console.error(`bench: part 3 - this CRIU cannot dump TCP sockets (${tcpError}); serving HTTP on an abstract unix socket`);
  const env = stasisEnv(setup, dir);
  const argv = [setup.stasis.path, '--', setup.apps.warm, String(options.mib), String(options.seconds), appAddress(address)];
  const timeoutMs = options.seconds * 1000 * 10 + 60_000;
  try {
    console.error(`bench: part 3 - cold start (${options.seconds} s warm-up, ${options.mib} MiB)`);
    const cold = await untilServing(argv, env, address, timeoutMs);
    await cold.container.signal('SIGUSR2');
    const { event: dumped } = await cold.container.waitForEvent('dump committed', 600_000);
    const code = await cold.container.done;
    if (code !== 0) throw new Error(`stasis exited ${code} after the dump: ${cold.container.tail()}`);
    await evict(filesIn(String(dumped.path)));
    console.error('bench: part 3 - restored (images evicted from the page cache)');
    const restored = await untilServing(argv, env, address, timeoutMs);
    await restored.container.waitForEvent('restored', 10_000);
    await stop(restored.container);
    console.error('bench: part 3 - restored (images in the page cache)');
    const cached = await untilServing(argv, env, address, timeoutMs);
    await cached.container.waitForEvent('restored', 10_000);
    await stop(cached.container);
    return {
      transport: tcpError === undefined ? 'tcp 127.0.0.1' : 'abstract unix socket',
      ...(tcpError === undefined ? {} : { tcp_dump_error: tcpError }),
      mib: options.mib,
      warmup_s: options.seconds,
      cold_ms: cold.ms,
      dump_ms: Number(dumped.duration_ms),
      image_bytes: Number(dumped.bytes),
      restored_ms: restored.ms,
      restored_cached_ms: cached.ms,
      speedup: round(cold.ms / restored.ms, 1),
      speedup_cached: round(cold.ms / cached.ms, 1),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
