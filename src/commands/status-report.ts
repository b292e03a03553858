/**
 * Pure part of `stasis status`: what a checkpoint directory holds, built from what
 * was read from it, and the readable text for an operator.
 */
import type { LastRestore } from '../checkpoint/history.js';
import { parseGenerationName } from '../checkpoint/layout.js';
import type { DumpStats } from '../criu/stats.js';
import type { RemoteStatus } from '../store/status.js';
import { formatBytes, formatMs, formatUs } from '../format.js';
import { formatAge, formatArgv, formatTable, formatTime, truncate } from './table.js';

export interface DumpSummary {
  readonly duration_ms: number | null;
  readonly criu_ms: number | null;
  readonly bytes: number | null;
  readonly stats: DumpStats;
  /** files of the container's own filesystem saved with the generation; null when not recorded (an older stasis) */
  readonly preserved_files: number | null;
  readonly preserved_bytes: number | null;
}

export interface GenerationSummary {
  readonly name: string;
  readonly generation: number;
  readonly current: boolean;
  /** Bytes of the generation's files on disk (images, metadata, logs). */
  readonly bytes: number;
  readonly created: string | null;
  readonly argv: readonly string[] | null;
  readonly appVersion: string | null;
  readonly mode: string | null;
  readonly appPid: number | null;
  readonly criuVersion: string | null;
  readonly stasisVersion: string | null;
  readonly dump: DumpSummary | null;
  /** Why the metadata could not be read; null when it could. */
  readonly problem: string | null;
}

export interface QuarantineEntry {
  readonly name: string;
  readonly generation: number | null;
  /** When it was quarantined (from its name). */
  readonly quarantinedAt: string | null;
  readonly reason: string | null;
  /** criu's restore.log is kept beside it. */
  readonly restoreLog: boolean;
  readonly bytes: number;
}

export interface FailedDump {
  readonly at: string;
  readonly errors: readonly string[];
}

export interface StatusReport {
  readonly dir: string;
  readonly exists: boolean;
  readonly current: string | null;
  readonly generations: readonly GenerationSummary[];
  readonly quarantine: readonly QuarantineEntry[];
  readonly lastRestore: LastRestore | null;
  readonly lastFailedDump: FailedDump | null;
  /** .incoming-* folders: dumps running now (or interrupted; removed at the next start). */
  readonly incoming: readonly string[];
  /** STASIS_STORE (and STASIS_STORE_TEMPLATE): the generations in object storage */
  readonly stores?: readonly RemoteStatus[];
}

export interface GenerationInput {
  readonly name: string;
  readonly bytes: number;
  readonly current: boolean;
  /** stasis.json's text; undefined when it is missing. */
  readonly metadataText: string | undefined;
}

type Loose = Record<string, unknown>;

const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const count = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

function dumpStats(value: unknown): DumpStats {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(Object.entries(value as Loose).filter(([, field]) => typeof field === 'number')) as DumpStats;
}

/** Pure: one generation's line of the report from its stasis.json (tolerating old or damaged metadata). */
export function summarizeGeneration(input: GenerationInput): GenerationSummary {
  const base = {
    name: input.name,
    generation: parseGenerationName(input.name) ?? 0,
    current: input.current,
    bytes: input.bytes,
  };
  const empty = { created: null, argv: null, appVersion: null, mode: null, appPid: null, criuVersion: null, stasisVersion: null, dump: null };
  if (input.metadataText === undefined) return { ...base, ...empty, problem: 'stasis.json is missing' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(input.metadataText);
  } catch {
    return { ...base, ...empty, problem: 'stasis.json is not valid JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null) return { ...base, ...empty, problem: 'stasis.json is not an object' };
  const metadata = parsed as Loose;
  const dump = typeof metadata.dump === 'object' && metadata.dump !== null ? (metadata.dump as Loose) : null;
  return {
    ...base,
    created: text(metadata.created),
    argv: Array.isArray(metadata.argv) ? metadata.argv.map(String) : null,
    appVersion: text(metadata.appVersion),
    mode: text(metadata.mode),
    appPid: count(metadata.appPid),
    criuVersion: text(metadata.criuVersion),
    stasisVersion: text(metadata.stasisVersion),
    dump:
      dump === null
        ? null
        : {
            duration_ms: count(dump.duration_ms),
            criu_ms: count(dump.criu_ms),
            bytes: count(dump.bytes),
            stats: dumpStats(dump.stats),
            preserved_files: count(dump.preserved_files),
            preserved_bytes: count(dump.preserved_bytes),
          },
    problem: null,
  };
}

/** Pure: `gen-000007.2025-11-27T08-00-00-123Z` (store.quarantine's naming) -> generation 7 and its ISO time. */
export function parseQuarantineName(name: string): { generation: number | null; quarantinedAt: string | null } {
  const match = /^(gen-\d{6,})(?:\.(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})Z)?$/.exec(name);
  if (!match) return { generation: null, quarantinedAt: null };
  const [, gen, date, hours, minutes, seconds, millis] = match;
  return {
    generation: parseGenerationName(gen as string) ?? null,
    quarantinedAt: date === undefined ? null : `${date}T${hours}:${minutes}:${seconds}.${millis}Z`,
  };
}

/** Pure: the line that says why: criu's first error, not its closing "Restoring FAILED." or "failed with -1". */
export function keyError(lines: readonly string[]): string | undefined {
  const trailer = /\b(?:Restoring|Dumping) FAILED\.?$|failed with -?\d+$/;
  return lines.find((line) => !trailer.test(line)) ?? lines.at(-1);
}

/** Pure: a multi-line quarantine reason as one line: its first line and the key error below it. */
export function reasonLine(reason: string | null): string {
  if (reason === null) return '(no reason recorded)';
  const lines = reason
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const [first, ...rest] = lines;
  if (first === undefined) return '(empty reason)';
  const key = keyError(rest);
  return key === undefined ? first : `${first.replace(/:$/, '')}: ${key}`;
}

/** Pure: the quarantined generations a restore attempt moved aside before its outcome (by their quarantine time). */
export function quarantinedDuring(last: LastRestore, quarantine: readonly QuarantineEntry[]): string[] {
  const end = Date.parse(last.at);
  const start = end - last.duration_ms - 1000;
  return quarantine
    .filter((entry) => entry.quarantinedAt !== null && Date.parse(entry.quarantinedAt) >= start && Date.parse(entry.quarantinedAt) <= end)
    .map((entry) => entry.name.replace(/\..*$/, ''));
}

/** Pure: the last-restore line; `quarantined`: generations that failed on the way (see quarantinedDuring). */
export function describeLastRestore(last: LastRestore | null, now: Date, quarantined: readonly string[] = []): string {
  if (last === null) return 'none recorded';
  const when = `${formatTime(last.at)} (${formatAge(last.at, now)})`;
  const after = quarantined.length === 0 ? '' : ` (after quarantining ${quarantined.join(', ')})`;
  switch (last.outcome) {
    case 'restored':
      return `restored gen ${last.generation ?? '?'}${last.lazy ? ' lazily' : ''} at ${when}, pid ${last.pid ?? '?'}, took ${formatMs(last.duration_ms)}${after}`;
    case 'failed':
      return `FAILED gen ${last.generation ?? '?'} at ${when}: ${keyError(last.errors) ?? 'no error recorded'} (stasis exited 3)`;
    case 'none':
      return `no restorable checkpoint at ${when}: the app started fresh${after}`;
  }
}

const REASON_WIDTH = 110;

/** Pure: the readable report. */
export function formatStatus(report: StatusReport, now: Date): string {
  const out = formatLocal(report, now);
  for (const store of report.stores ?? []) out.push('', ...formatRemote(store, now));
  return `${out.join('\n')}\n`;
}

function formatLocal(report: StatusReport, now: Date): string[] {
  const out: string[] = [`Checkpoint directory: ${report.dir}`];
  if (!report.exists) {
    out.push('', 'It does not exist yet: no checkpoint has been made (stasis creates it, mode 0700, at start).');
    return out;
  }
  out.push(`Current: ${report.current ?? '(none)'}`, '');
  if (report.generations.length === 0) {
    out.push('Generations: none');
  } else {
    out.push('Generations (newest first, * = current):');
    out.push(
      indent(
        formatTable(
          ['', 'GENERATION', 'CREATED', 'SIZE', 'MODE', 'COMMAND'],
          report.generations.map((g) => [
            g.current ? '*' : '',
            g.name,
            g.created === null ? '-' : `${formatTime(g.created)} (${formatAge(g.created, now)})`,
            formatBytes(g.bytes),
            g.mode ?? '-',
            g.problem ?? (g.argv === null ? '-' : truncate(formatArgv(g.argv), 60)),
          ]),
        ),
      ),
      '',
      'Dumps (criu stats):',
      indent(
        formatTable(
          ['GENERATION', 'TOTAL', 'CRIU', 'FREEZING', 'FROZEN', 'MEMDUMP', 'MEMWRITE', 'PAGES WRITTEN', 'PRESERVED FILES'],
          report.generations.map((g) => {
            const stats = g.dump?.stats ?? {};
            return [
              g.name,
              formatMs(g.dump?.duration_ms ?? undefined),
              formatMs(g.dump?.criu_ms ?? undefined),
              formatUs(stats.freezing_time_us),
              formatUs(stats.frozen_time_us),
              formatUs(stats.memdump_time_us),
              formatUs(stats.memwrite_time_us),
              stats.pages_written === undefined ? '-' : String(stats.pages_written),
              describePreserved(g.dump),
            ];
          }),
        ),
      ),
    );
  }
  out.push('');
  if (report.quarantine.length === 0) {
    out.push('Quarantine: empty');
  } else {
    out.push(`Quarantine (${report.quarantine.length}, never restored again; restore.log inside):`);
    out.push(
      indent(
        formatTable(
          ['NAME', 'QUARANTINED', 'REASON'],
          report.quarantine.map((q) => [
            q.name,
            q.quarantinedAt === null ? '-' : formatAge(q.quarantinedAt, now),
            truncate(reasonLine(q.reason), REASON_WIDTH),
          ]),
        ),
      ),
    );
  }
  const quarantined = report.lastRestore === null ? [] : quarantinedDuring(report.lastRestore, report.quarantine);
  out.push('', `Last restore: ${describeLastRestore(report.lastRestore, now, quarantined)}`);
  if (report.lastFailedDump !== null) {
    const error = keyError(report.lastFailedDump.errors) ?? 'see last-failed-dump.log';
    out.push(`Last failed dump: ${formatTime(report.lastFailedDump.at)} (${formatAge(report.lastFailedDump.at, now)}): ${truncate(error, REASON_WIDTH)}`);
  }
  if (report.incoming.length > 0) out.push(`Dump in progress (or interrupted): ${report.incoming.join(', ')}`);
  return out;
}

function generationLines(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return rows.length === 0 ? ['Generations: none'] : ['Generations (newest first, * = current):', indent(formatTable(header, rows))];
}

/** Pure: the lines of one object store's part of `stasis status`. */
export function formatRemote(store: RemoteStatus, now: Date): string[] {
  const out = [`${store.template ? 'Template store (read-only)' : 'Object store'}: ${store.url} at ${store.endpoint}`];
  if (store.error !== null) return [...out, `  cannot be read: ${store.error}`];
  if (!store.template) out.push(`Current: ${store.current ?? '(none)'}`);
  out.push(
    ...generationLines(
      ['', 'GENERATION', 'UPLOADED', 'STORED', 'OBJECTS', 'STATE'],
      store.generations.map((g) => [
        g.id === store.current ? '*' : '',
        g.id,
        `${formatTime(g.modified)} (${formatAge(g.modified, now)})`,
        formatBytes(g.storedBytes),
        String(g.objects),
        g.committed ? 'committed' : 'no manifest: uploading, or a failed upload (never restored)',
      ]),
    ),
  );
  if (store.quarantine.length > 0) {
    out.push(`Quarantine (${store.quarantine.length}, never restored again):`);
    out.push(indent(formatTable(['NAME', 'REASON'], store.quarantine.map((q) => [q.id, truncate(reasonLine(q.reason), REASON_WIDTH)]))));
  }
  return out;
}

/** Pure: `3 (1.2 MiB)`, `0`, or `-` when the generation does not say (made by an older stasis). */
export function describePreserved(dump: DumpSummary | null): string {
  const files = dump?.preserved_files ?? null;
  if (files === null) return '-';
  return files === 0 ? '0' : `${files} (${formatBytes(dump?.preserved_bytes ?? 0)})`;
}

function indent(block: string): string {
  return block
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
