/**
 * npm run bench [-- --smoke] [--only pid1,checkpoint,warmup,lazy,store] [--out DIR]
 *   [--sizes MIB,...] (checkpoint and store parts: only these of their sizes)
 *   [--compress zstd|none] (store part: STASIS_COMPRESS, default zstd)
 *
 * Measures stasis side by side with tini, dumb-init, bare Node and raw criu in one
 * run and writes results.json, results.md and plot.svg (from the JSON). The full run
 * writes bench/results/; --smoke (tiny sizes, seconds) writes .cache/bench/smoke/.
 * STASIS_BIN picks the binary (default dist/stasis if built, else bin/stasis);
 * BENCH_DIR the scratch folder for images (default .cache/bench/work).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { benchCheckpoint } from './checkpoint.ts';
import { benchLazy } from './lazy.ts';
import { Container } from './lib/proc.ts';
import { describe, prepare, ROOT } from './lib/setup.ts';
import { benchPid1 } from './pid1.ts';
import { benchStore } from './store.ts';
import { plotSvg, storePlotSvg } from './plot.ts';
import { judge, markdown, type Results } from './report.ts';
import { benchWarmup } from './warmup.ts';

const PARTS = ['pid1', 'checkpoint', 'warmup', 'lazy', 'store'] as const;

const FULL = {
  pid1: { hyperfineRounds: 4, hyperfineRuns: 10, hyperfineWarmup: 2, rssReps: 3, rssSettleMs: 1500, orphans: 10_000, orphanReps: 5, signals: 2000, signalRounds: 4 },
  checkpoint: { sizes: [{ mib: 64, reps: 5 }, { mib: 512, reps: 4 }, { mib: 2048, reps: 2 }] },
  warmup: { mib: 1024, seconds: 10 },
  lazy: { sizes: [256, 1024, 4096], seconds: 10 },
  store: { sizes: [{ mib: 64, reps: 3 }, { mib: 512, reps: 2 }, { mib: 2048, reps: 1 }] },
};

const SMOKE: typeof FULL = {
  pid1: { hyperfineRounds: 1, hyperfineRuns: 3, hyperfineWarmup: 1, rssReps: 1, rssSettleMs: 300, orphans: 200, orphanReps: 1, signals: 50, signalRounds: 1 },
  checkpoint: { sizes: [{ mib: 8, reps: 1 }, { mib: 16, reps: 1 }] },
  warmup: { mib: 16, seconds: 0.5 },
  lazy: { sizes: [64], seconds: 0.5 },
  store: { sizes: [{ mib: 8, reps: 1 }, { mib: 16, reps: 1 }] },
};

/** --sizes 64,512: the checkpoint and store parts measure only those of their sizes. */
function pickSizes(options: typeof FULL, sizes: string | undefined): typeof FULL {
  if (sizes === undefined) return options;
  const wanted = sizes.split(',').map(Number);
  const known = new Set([...options.checkpoint.sizes, ...options.store.sizes].map((size) => size.mib));
  const unknown = wanted.filter((mib) => !known.has(mib));
  if (unknown.length > 0) throw new Error(`--sizes: ${unknown.join(', ')} MiB is not measured; sizes are ${[...known].join(', ')}`);
  const keep = <T extends { readonly mib: number }>(list: readonly T[]): T[] => list.filter((size) => wanted.includes(size.mib));
  return { ...options, checkpoint: { sizes: keep(options.checkpoint.sizes) }, store: { sizes: keep(options.store.sizes) } };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { smoke: { type: 'boolean', default: false }, only: { type: 'string' }, out: { type: 'string' }, sizes: { type: 'string' }, compress: { type: 'string', default: 'zstd' } },
  });
  const smoke = values.smoke === true;
  const only = values.only === undefined ? [...PARTS] : values.only.split(',');
  const unknown = only.filter((part) => !(PARTS as readonly string[]).includes(part));
  if (unknown.length > 0) throw new Error(`--only: unknown part ${unknown.join(', ')}; parts are ${PARTS.join(', ')}`);
  if (values.compress !== 'zstd' && values.compress !== 'none') throw new Error(`--compress: ${values.compress}; zstd or none`);
  const options = pickSizes(smoke ? SMOKE : FULL, values.sizes);
  const outDir = resolve(values.out ?? join(ROOT, smoke ? '.cache/bench/smoke' : 'bench/results'));
  const workDir = resolve(process.env.BENCH_DIR ?? join(ROOT, '.cache/bench/work'));
  mkdirSync(outDir, { recursive: true });
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true, mode: 0o700 });

  const started = performance.now();
  const setup = await prepare(join(ROOT, '.cache/bench/bin'));
  console.error(`bench: measuring ${setup.stasis.path} (${setup.stasis.kind})${smoke ? ', smoke run' : ''}`);
  const meta = await describe(setup, workDir, smoke);
  const results: Results = { meta, errors: [] };
  const save = (): string => {
    meta.duration_s = Math.round((performance.now() - started) / 1000);
    meta.machine.loadavg_at_end = loadavg().map((value) => Math.round(value * 10) / 10);
    results.goals = judge(results);
    const md = markdown(results);
    writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(outDir, 'results.md'), md);
    if (results.checkpoint && results.checkpoint.length > 0) {
      const subtitle = `CRIU ${meta.versions.criu ?? '?'}, stasis ${meta.stasis_bin.kind}, ${meta.machine.nproc} CPUs, ${meta.date.slice(0, 10)}; restores read images not in the page cache`;
      writeFileSync(join(outDir, 'plot.svg'), plotSvg(results.checkpoint, subtitle));
    }
    if (results.store && results.store.length > 0) {
      const subtitle = `Ceph RGW (memstore) on loopback, incompressible heap, ${results.store[0]?.compress === 'none' ? 'no compression' : 'zstd level 3'}, ${meta.machine.nproc} CPUs shared with the server, ${meta.date.slice(0, 10)}`;
      writeFileSync(join(outDir, 'store-plot.svg'), storePlotSvg(results.store, subtitle));
    }
    return md;
  };
  /** Runs one part; a failure is recorded (and fails the run) but the other parts still run. Results are saved after each. */
  const part = async <T>(name: (typeof PARTS)[number], measure: () => Promise<T>): Promise<T | undefined> => {
    if (!only.includes(name)) return undefined;
    try {
      return await measure();
    } catch (error) {
      Container.killAll();
      const message = `${name}: ${error instanceof Error ? error.message : String(error)}`;
      console.error(`bench: FAILED ${message}`);
      results.errors.push(message);
      return undefined;
    } finally {
      save();
    }
  };
  try {
    results.pid1 = await part('pid1', () => benchPid1(setup, options.pid1, outDir, workDir));
    results.checkpoint = await part('checkpoint', () => benchCheckpoint(setup, options.checkpoint, workDir));
    results.warmup = await part('warmup', () => benchWarmup(setup, options.warmup, workDir));
    results.lazy = await part('lazy', () => benchLazy(setup, options.lazy, workDir));
    results.store = await part('store', () => benchStore(setup, { ...options.store, compress: values.compress as 'zstd' | 'none' }, workDir));
  } finally {
    rmSync(workDir, { recursive: true, force: true });
    rmSync(`/dev/shm/stasis-bench-${process.pid}.sock`, { force: true });
  }
  const md = save();
  process.stdout.write(md);
  console.error(`bench: done in ${meta.duration_s} s; results in ${outDir}`);
  if (results.errors.length > 0) process.exitCode = 1;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    Container.killAll();
    process.exit(130);
  });
}

main().catch((error: unknown) => {
  Container.killAll();
  console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
