import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** What a start did with the checkpoints, as far as its record goes (restore.ts's outcome, lazy as a flag). */
export type RestoreSummary =
  | { readonly kind: 'restored'; readonly pid: number; readonly generation: number; readonly lazy?: boolean }
  | { readonly kind: 'none' }
  | { readonly kind: 'failed'; readonly generation: number; readonly criuErrors: readonly string[] };

/** What the last start did with the checkpoints, for `stasis status`. */
export const LAST_RESTORE_FILE = 'last-restore.json';

export interface LastRestore {
  readonly format: 1;
  /** When the restore attempt ended (ISO 8601). */
  readonly at: string;
  /** restored: the app runs from `generation`; failed: stasis exited 3; none: no usable checkpoint, fresh start. */
  readonly outcome: RestoreSummary['kind'];
  readonly generation: number | null;
  /** The restored app's PID (outcome restored). */
  readonly pid: number | null;
  /** Restored with STASIS_LAZY: the app ran before its memory was all in. */
  readonly lazy: boolean;
  /** From choosing a generation to the app running (or the failure). */
  readonly duration_ms: number;
  /** criu's error lines or why the generation was unusable (outcome failed). */
  readonly errors: readonly string[];
}

/** Pure: the record of one restore attempt. */
export function restoreRecord(outcome: RestoreSummary, durationMs: number, at: Date): LastRestore {
  return {
    format: 1,
    at: at.toISOString(),
    outcome: outcome.kind,
    generation: outcome.kind === 'none' ? null : outcome.generation,
    pid: outcome.kind === 'restored' ? outcome.pid : null,
    lazy: outcome.kind === 'restored' && outcome.lazy === true,
    duration_ms: Math.round(durationMs),
    errors: outcome.kind === 'failed' ? [...outcome.criuErrors] : [],
  };
}

const OUTCOMES: readonly string[] = ['restored', 'failed', 'none'];

/** Pure: a LastRestore from the file's text, or undefined when it is not one. */
export function parseLastRestore(text: string): LastRestore | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Partial<Record<keyof LastRestore, unknown>>;
  if (record.format !== 1 || typeof record.at !== 'string' || typeof record.outcome !== 'string' || !OUTCOMES.includes(record.outcome)) {
    return undefined;
  }
  const numberOrNull = (field: unknown): number | null => (typeof field === 'number' ? field : null);
  return {
    format: 1,
    at: record.at,
    outcome: record.outcome as LastRestore['outcome'],
    generation: numberOrNull(record.generation),
    pid: numberOrNull(record.pid),
    lazy: record.lazy === true,
    duration_ms: typeof record.duration_ms === 'number' ? record.duration_ms : 0,
    errors: Array.isArray(record.errors) ? record.errors.map(String) : [],
  };
}

/**
 * Writes $STASIS_DIR/last-restore.json atomically (owner-only temp file, fsync,
 * rename). Never throws: a record that cannot be written must not stop a restore.
 */
export async function recordRestore(dir: string, record: LastRestore): Promise<boolean> {
  const target = join(dir, LAST_RESTORE_FILE);
  const temporary = join(dir, `.${LAST_RESTORE_FILE}-${process.pid}-${Date.now()}`);
  try {
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(record, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, target);
    return true;
  } catch {
    await rm(temporary, { force: true }).catch(() => undefined);
    return false;
  }
}

/** The last recorded restore; null when none was recorded or the file is unreadable. */
export async function readLastRestore(dir: string): Promise<LastRestore | null> {
  const text = await readFile(join(dir, LAST_RESTORE_FILE), 'utf8').catch(() => undefined);
  return text === undefined ? null : (parseLastRestore(text) ?? null);
}
