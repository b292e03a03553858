/**
 * Goals of issue 6 judged from the results, and the Markdown tables.
 */
import type { SizeResult } from './checkpoint.ts';
import type { Meta } from './lib/setup.ts';
import type { Pid1Results } from './pid1.ts';
import type { LazyResults } from './lazy.ts';
import type { StoreSizeResult } from './store.ts';
import type { WarmupResults } from './warmup.ts';

export interface Results {
  readonly meta: Meta;
  pid1?: Pid1Results | undefined;
  checkpoint?: readonly SizeResult[] | undefined;
  warmup?: WarmupResults | undefined;
  lazy?: LazyResults | undefined;
  store?: readonly StoreSizeResult[] | undefined;
  goals?: Goal[];
  /** parts that failed, with why */
  readonly errors: string[];
}

export interface Goal {
  readonly what: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean;
}

const x = (ratio: number): string => `${ratio.toFixed(2)}x`;
const r = (a: number, b: number): number => a / b;

export function judge(results: Results): Goal[] {
  const goals: Goal[] = [];
  const p = results.pid1;
  if (p) {
    const startup = r(at(p.startup.plain, 'stasis').median_ms, at(p.startup.plain, 'node -e 0').median_ms);
    goals.push({ what: 'start-to-exit `stasis -- true` vs `node -e 0`', target: '<= 1.2x', measured: x(startup), met: startup <= 1.2 });
    for (const [name, what] of [['stasis', 'idle RSS of stasis (plain init) vs an idle bare Node'], ['stasis (STASIS_DIR)', 'idle RSS of stasis with STASIS_DIR set vs an idle bare Node']] as const) {
      if (p.rss[name] === undefined) continue;
      const rss = r(at(p.rss, name).rss_kib, at(p.rss, 'idle node').rss_kib);
      goals.push({ what, target: '<= 1.15x', measured: x(rss), met: rss <= 1.15 });
    }
    const reap = r(at(p.reap.median_ms, 'stasis'), at(p.reap.median_ms, 'tini'));
    goals.push({ what: `reaping ${p.reap.n} orphans vs tini`, target: '<= 1.5x', measured: x(reap), met: reap <= 1.5 });
    const p99 = at(p.signals, 'stasis').p99_us / 1000;
    goals.push({ what: 'signal forwarding latency p99', target: '<= 2 ms', measured: `${p99.toFixed(2)} ms`, met: p99 <= 2 });
  }
  const sizes = results.checkpoint;
  if (sizes && sizes.length > 0) {
    const list = (pick: (s: SizeResult) => number): string => sizes.map((s) => `${s.mib} MiB ${x(pick(s))}`).join(', ');
    goals.push({
      what: 'dump overhead: stasis vs raw criu dump + sync',
      target: '<= 1.1x',
      measured: list((s) => s.ratios.dump),
      met: sizes.every((s) => s.ratios.dump <= 1.1),
    });
    goals.push({
      what: 'restore overhead: container start to restored vs raw criu restore -d',
      target: '<= 1.15x',
      measured: sizes.map((s) => `${s.mib} MiB ${x(s.ratios.start_to_restored)} (criu run alone ${x(s.ratios.restore)})`).join(', '),
      met: sizes.every((s) => s.ratios.start_to_restored <= 1.15),
    });
  }
  const w = results.warmup;
  if (w) {
    goals.push({
      what: 'slow warm-up app: first HTTP 200, cold vs restored (images not cached)',
      target: '>= 20x faster',
      measured: `${w.speedup.toFixed(1)}x (cached images: ${w.speedup_cached.toFixed(1)}x)`,
      met: w.speedup >= 20,
    });
  }
  const lazy = results.lazy?.sizes ?? [];
  if (lazy.length > 1) {
    const firsts = lazy.map((s) => s.lazy_first_200_ms);
    const spread = Math.max(...firsts) / Math.min(...firsts);
    goals.push({
      what: `lazy restore, first HTTP 200 flat from ${lazy[0]?.mib} MiB to ${lazy.at(-1)?.mib} MiB`,
      target: '<= 2x',
      measured: `${x(spread)} (${lazy.map((s) => `${s.mib} MiB ${ms(s.lazy_first_200_ms)} ms`).join(', ')})`,
      met: spread <= 2,
    });
  }
  const big = lazy.filter((s) => s.mib >= 1024);
  if (big.length > 0) {
    goals.push({
      what: 'lazy restore, first HTTP 200 below eager at 1 GiB and up',
      target: 'lazy < eager',
      measured: big.map((s) => `${s.mib} MiB ${ms(s.lazy_first_200_ms)} vs ${ms(s.eager_first_200_ms)} ms`).join(', '),
      met: big.every((s) => s.lazy_first_200_ms < s.eager_first_200_ms),
    });
  }
  const store = results.store ?? [];
  if (store.length > 0) {
    goals.push({
      what: 'object store dump: signal to remote commit vs local dump + upload of the same compressed bytes alone',
      target: '<= 1.3x',
      measured: store.map((s) => `${s.mib} MiB ${x(s.dump_ratio)}`).join(', '),
      met: store.every((s) => s.dump_ratio <= 1.3),
    });
    goals.push({
      what: 'object store restore: container start to restored vs download alone + local restore',
      target: '<= 1.3x',
      measured: store.map((s) => `${s.mib} MiB ${x(s.restore_ratio)}`).join(', '),
      met: store.every((s) => s.restore_ratio <= 1.3),
    });
  }
  return goals;
}

function at<T>(record: Readonly<Record<string, T>>, key: string): T {
  const value = record[key];
  if (value === undefined) throw new Error(`no result for ${key}`);
  return value;
}

const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value.toFixed(1));
const mib = (kib: number): string => (kib / 1024).toFixed(1);
const gb = (bytes: number): string => (bytes / 1e9).toFixed(2);

export function markdown(results: Results): string {
  const lines: string[] = [];
  const { meta } = results;
  const { machine, versions } = meta;
  lines.push(`Measured ${meta.date}${meta.smoke ? ' (SMOKE run: tiny sizes, the numbers mean nothing)' : ''}, in ${meta.duration_s ?? '?'} s.`);
  lines.push(
    `Machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.ram_gib} GiB RAM, Linux ${machine.kernel}, disk ${machine.disk}; ` +
      `load average ${machine.loadavg_at_start.join(' ')} at start, ${machine.loadavg_at_end?.join(' ') ?? '?'} at end.`,
  );
  lines.push(`Versions: ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  lines.push(`stasis measured: \`${meta.stasis_bin.path}\` (${meta.stasis_bin.kind}, ${(meta.stasis_bin.bytes / 1e6).toFixed(1)} MB).`, '');
  const p = results.pid1;
  if (p) {
    const s = p.startup;
    lines.push('### PID 1', '');
    lines.push('| | tini | dumb-init | stasis | bare Node | stasis / tini | stasis / Node |', '|---|---:|---:|---:|---:|---:|---:|');
    const row = (label: string, values: [number, number, number, number | undefined], show: (v: number) => string): void => {
      const [tini, dumb, stasis, node] = values;
      lines.push(
        `| ${label} | ${show(tini)} | ${show(dumb)} | ${show(stasis)} | ${node === undefined ? '-' : show(node)} | ${x(stasis / tini)} | ${node === undefined ? '-' : x(stasis / node)} |`,
      );
    };
    const names = ['tini', 'dumb-init', 'stasis'] as const;
    row('`X -- true`, start to exit, median ms', [...names.map((n) => at(s.plain, n).median_ms), at(s.plain, 'node -e 0').median_ms] as [number, number, number, number], ms);
    row('same, as PID 1 of a new PID namespace (unshare), ms', [...names.map((n) => at(s.pid1, n).median_ms), at(s.pid1, 'node -e 0').median_ms] as [number, number, number, number], ms);
    row('idle RSS of the init, MiB', [...names.map((n) => at(p.rss, n).rss_kib), at(p.rss, 'idle node').rss_kib] as [number, number, number, number], mib);
    row('idle PSS of the init, MiB', [...names.map((n) => at(p.rss, n).pss_kib), at(p.rss, 'idle node').pss_kib] as [number, number, number, number], mib);
    const withDir = p.rss['stasis (STASIS_DIR)'];
    if (withDir !== undefined) {
      const node = at(p.rss, 'idle node');
      lines.push(`| idle RSS / PSS of stasis with STASIS_DIR set, MiB | - | - | ${mib(withDir.rss_kib)} / ${mib(withDir.pss_kib)} | ${mib(node.rss_kib)} / ${mib(node.pss_kib)} | - | ${x(withDir.rss_kib / node.rss_kib)} |`);
    }
    row(`reaping ${p.reap.n} orphans as PID 1, median ms`, [...names.map((n) => at(p.reap.median_ms, n)), undefined] as [number, number, number, undefined], ms);
    row('signal forwarding p50, µs', [...names.map((n) => at(p.signals, n).p50_us), undefined] as [number, number, number, undefined], ms);
    row('signal forwarding p99, µs', [...names.map((n) => at(p.signals, n).p99_us), undefined] as [number, number, number, undefined], ms);
    lines.push('', `Bare Node: \`node -e 0\` for start-to-exit, an idle \`setInterval\` for memory (same Node ${versions.node ?? '?'}). Signals: ${at(p.signals, 'stasis').n} SIGUSR1 per init in rounds, one in flight at a time; orphans: ${p.reap.reps} runs each, interleaved.`, '');
  }
  const sizes = results.checkpoint;
  if (sizes && sizes.length > 0) {
    lines.push('### Checkpoint and restore', '');
    lines.push(
      '| heap | image GB | dump: stasis ms | raw criu + sync ms (criu alone) | stasis / raw | freezing ms stasis / raw | frozen ms stasis / raw | restore: stasis start→restored ms (criu alone) | raw criu restore -d ms | stasis / raw | dump MB/s: stasis / raw / disk write | restore MB/s: stasis / raw / disk read / app fill |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const s of sizes) {
      lines.push(
        `| ${s.mib} MiB | ${gb(s.stasis.bytes)} | ${ms(s.stasis.dump_ms)} | ${ms(s.raw.dump_sync_ms)} (${ms(s.raw.dump_ms)}) | ${x(s.ratios.dump)} | ` +
          `${ms(s.stasis.freezing_ms)} / ${ms(s.raw.freezing_ms)} | ${ms(s.stasis.frozen_ms)} / ${ms(s.raw.frozen_ms)} | ` +
          `${ms(s.stasis.start_to_restored_ms)} (${ms(s.stasis.restore_ms)}) | ${ms(s.raw.restore_ms)} | ${x(s.ratios.start_to_restored)} | ` +
          `${s.mb_per_s.stasis_dump} / ${s.mb_per_s.raw_dump_sync} / ${s.mb_per_s.disk_write} | ${s.mb_per_s.stasis_restore} / ${s.mb_per_s.raw_restore} / ${s.mb_per_s.disk_read} / ${s.mb_per_s.app_fill} |`,
      );
    }
    lines.push(
      '',
      `Median of ${sizes.map((s) => s.reps).join('/')} runs per size; the ratios are medians of per-run ratios (each stasis run against the raw run next to it). Dump: stasis from its "signal handled" to its "dump committed" log line (criu, fsync of every image, metadata, atomic commit) against raw \`criu dump --leave-stopped\` plus \`sync\` of its images. ` +
        'Restore: images evicted from the page cache first; stasis measured from container start (PID 1 exec) to its "restored" log line. Disk: `dd` of the same bytes in the same folder, `conv=fsync` write, uncached read. App fill: the heap app writing its fresh heap (first touch), how fast this machine populates memory at all.',
      '',
    );
  }
  const w = results.warmup;
  if (w) {
    lines.push('### Slow warm-up app: container start to first HTTP 200', '');
    lines.push('| app | cold start | restored (images not cached) | restored (images cached) | speed-up |', '|---|---:|---:|---:|---:|');
    lines.push(
      `| ${w.warmup_s} s of init work, ${w.mib} MiB heap, image ${gb(w.image_bytes)} GB, HTTP on ${w.transport} | ${ms(w.cold_ms)} ms | ${ms(w.restored_ms)} ms | ${ms(w.restored_cached_ms)} ms | ${w.speedup.toFixed(1)}x / ${w.speedup_cached.toFixed(1)}x |`,
      '',
    );
    if (w.tcp_dump_error) lines.push(`Not TCP: this CRIU cannot dump a listening TCP socket on this kernel (\`${w.tcp_dump_error}\`; checkpoint-restore/criu#2705, Linux >= 6.16), so the same server listened on an abstract unix socket.`, '');
  }
  const lazy = results.lazy;
  if (lazy && lazy.sizes.length > 0) {
    lines.push('### Lazy against eager restore: slow warm-up app, container start to first HTTP 200', '');
    lines.push(
      '| heap | image GB | first 200: eager ms | first 200: lazy ms | all pages in: eager ms | all pages in: lazy ms | lazy-pages daemon run ms | daemon peak RSS MiB | cold start ms |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const s of lazy.sizes) {
      lines.push(
        `| ${s.mib} MiB | ${gb(s.image_bytes)} | ${ms(s.eager_first_200_ms)} | ${ms(s.lazy_first_200_ms)} | ${ms(s.eager_all_in_ms)} | ${ms(s.lazy_all_in_ms)} | ` +
          `${ms(s.lazy_daemon_ms)} | ${s.lazy_daemon_peak_rss_kib === null ? '?' : mib(s.lazy_daemon_peak_rss_kib)} | ${ms(s.cold_ms)} |`,
      );
    }
    lines.push(
      '',
      `\`apps/warm.c\` with ${lazy.warmup_s} s of warm-up, one checkpoint per size, images evicted from the page cache before each restore; one run each. ` +
        'All pages in: container start to stasis\'s "restored" (eager) or "lazy restore complete: every page is in" (lazy) log line. Daemon peak RSS: VmHWM of `criu lazy-pages`, sampled every 10 ms.',
      '',
    );
  }
  const store = results.store;
  if (store && store.length > 0) {
    const columns: readonly (readonly [string, (s: StoreSizeResult) => string])[] = [
      ['heap', (s) => `${s.mib} MiB`],
      ['image GB', (s) => gb(s.image_bytes)],
      ['stored GB (ratio)', (s) => `${gb(s.stored_bytes)} (${s.compression_ratio.toFixed(2)})`],
      ['dump→remote commit ms', (s) => ms(s.store_dump_ms)],
      ['local dump ms + upload alone ms', (s) => `${ms(s.local_dump_ms)} + ${ms(s.upload_alone_ms)}`],
      ['ratio', (s) => x(s.dump_ratio)],
      ['start→restored from store ms', (s) => ms(s.store_restore_ms)],
      ['download alone ms + local restore ms', (s) => `${ms(s.download_alone_ms)} + ${ms(s.local_restore_ms)}`],
      ['ratio', (s) => x(s.restore_ratio)],
      ['upload MB/s stasis / alone', (s) => `${s.mb_per_s.upload} / ${s.mb_per_s.upload_alone}`],
      ['download MB/s stasis / alone', (s) => `${s.mb_per_s.download} / ${s.mb_per_s.download_alone}`],
    ];
    const coding = store[0]?.compress === 'none' ? 'STASIS_COMPRESS=none' : 'zstd level 3';
    lines.push(`### Object storage (Ceph RGW on loopback, ${coding})`, '');
    lines.push(`| ${columns.map(([header]) => header).join(' | ')} |`, `|---${'|---:'.repeat(columns.length - 1)}|`);
    lines.push(...store.map((s) => `| ${columns.map(([, cell]) => cell(s)).join(' | ')} |`));
    lines.push(
      '',
      `Median of ${store.map((s) => s.reps).join('/')} runs per size; ratios are medians of per-run ratios. The heap app's memory is pseudo-random: zstd cannot shrink it (the worst case; stasis's samples see that and store such files as they are). ` +
        'Dump: "signal handled" to "checkpoint uploaded" in exit mode; local: the same app dumped without a store; upload alone: the same files compressed beforehand as stasis stores them, uploaded with the same parts and parallelism. ' +
        'Restore: container start with an empty STASIS_DIR to "restored"; download alone: the same objects fetched with the same ranged GETs into files; local restore: start to "restored" from a local generation not in the page cache. Node, radosgw and the memstore OSD share the 2 CPUs.',
      '',
    );
  }
  if (results.errors.length > 0) {
    lines.push('### Failed parts', '', ...results.errors.map((error) => `- ${error.split('\n')[0]}`), '');
  }
  if (results.goals && results.goals.length > 0) {
    lines.push('### Goals', '', '| goal | target | measured | met |', '|---|---|---|---|');
    for (const g of results.goals) lines.push(`| ${g.what} | ${g.target} | ${g.measured} | ${g.met ? 'yes' : '**no**'} |`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
