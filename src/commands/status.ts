/**
 * `stasis status [--json]`: what the checkpoint directory holds - generations with
 * their dump stats, quarantine with reasons, the last restore. Reads only.
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readLastRestore } from '../checkpoint/history.js';
import { FAILED_DUMP_LOG, INCOMING_PREFIX, METADATA_FILE, QUARANTINE_DIR, QUARANTINE_REASON_FILE } from '../checkpoint/layout.js';
import { currentName, imageBytes, listGenerations } from '../checkpoint/store.js';
import { RESTORE_LOG } from '../criu/args.js';
import { criuErrors } from '../criu/log.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { formatStatus, parseQuarantineName, summarizeGeneration, type FailedDump, type QuarantineEntry, type StatusReport } from './status-report.js';


/** STASIS_DIR (or --dir) is needed by the commands that read the checkpoints. */
export function requireDir(config: Config): string {
  if (config.dir === null) throw new ConfigError('STASIS_DIR', '', 'the checkpoint directory: set STASIS_DIR or give --dir');
  return config.dir;
}

export async function collectStatus(dir: string): Promise<StatusReport> {
  const info = await lstat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (info === null) {
    return { dir, exists: false, current: null, generations: [], quarantine: [], lastRestore: null, lastFailedDump: null, incoming: [] };
  }
  const names = await readdir(dir);
  const current = await currentName(dir);
  const generations = await Promise.all(
    (await listGenerations(dir)).map(async (generation) =>
      summarizeGeneration({
        name: generation.name,
        current: generation.name === current,
        bytes: await imageBytes(generation.path),
        metadataText: await readFile(join(generation.path, METADATA_FILE), 'utf8').catch(() => undefined),
      }),
    ),
  );
  return {
    dir,
    exists: true,
    current,
    generations,
    quarantine: await readQuarantine(join(dir, QUARANTINE_DIR)),
    lastRestore: await readLastRestore(dir),
    lastFailedDump: await readFailedDump(join(dir, FAILED_DUMP_LOG)),
    incoming: names.filter((name) => name.startsWith(INCOMING_PREFIX)).sort(),
  };
}

async function readQuarantine(path: string): Promise<QuarantineEntry[]> {
  const names = await readdir(path).catch(() => [] as string[]);
  const entries: QuarantineEntry[] = [];
  for (const name of names) {
    const where = join(path, name);
    if (!(await lstat(where)).isDirectory()) continue;
    const files = await readdir(where);
    entries.push({
      name,
      ...parseQuarantineName(name),
      reason: files.includes(QUARANTINE_REASON_FILE) ? (await readFile(join(where, QUARANTINE_REASON_FILE), 'utf8')).trim() : null,
      restoreLog: files.includes(RESTORE_LOG),
      bytes: await imageBytes(where),
    });
  }
  // Newest first: by the time in the name, then by name.
  return entries.sort((a, b) => (b.quarantinedAt ?? '').localeCompare(a.quarantinedAt ?? '') || b.name.localeCompare(a.name));
}

async function readFailedDump(path: string): Promise<FailedDump | null> {
  const info = await lstat(path).catch(() => null);
  if (info === null || !info.isFile()) return null;
  const log = await readFile(path, 'utf8').catch(() => '');
  return { at: info.mtime.toISOString(), errors: criuErrors(log, 5) };
}

export interface StatusOptions {
  readonly json: boolean;
  readonly write: (text: string) => void;
  readonly now?: Date;
}

/** Prints the report; 0, or 1 when the directory cannot be read. */
export async function runStatus(config: Config, options: StatusOptions): Promise<number> {
  const dir = requireDir(config);
  let report: StatusReport;
  try {
    report = await collectStatus(dir);
    // loaded only with a store configured: the AWS SDK is most of the bundle
    if (config.store !== null) report = { ...report, stores: await (await import('../store/status.js')).collectRemoteStatus(config) };
  } catch (error) {
    process.stderr.write(`stasis status: cannot read ${dir}: ${(error as Error).message}\n`);
    return 1;
  }
  options.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report, options.now ?? new Date()));
  return 0;
}

export interface StatusFlags {
  readonly dir?: string;
  readonly json?: boolean;
}

/** The `stasis status` action: STASIS_DIR / --dir as the main program reads them. */
export async function statusCommand(flags: StatusFlags): Promise<number> {
  const config = loadConfig(process.env, { dir: flags.dir });
  return runStatus(config, { json: flags.json === true, write: (text) => process.stdout.write(text) });
}
