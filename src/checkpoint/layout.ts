import { createHash } from 'node:crypto';
import type { FdIdentity } from '../stdio.js';
import type { DumpStats } from '../criu/stats.js';
import type { PreservedEntry } from './files.js';

/** The stasis.json format this stasis writes and the newest it can read. */
export const FORMAT_VERSION = 1;
export const METADATA_FILE = 'stasis.json';
export const CURRENT_LINK = 'current';
export const QUARANTINE_DIR = 'quarantine';
export const INCOMING_PREFIX = '.incoming-';
/** criu's log of the last dump that failed, kept beside the generations for the operator. */
export const FAILED_DUMP_LOG = 'last-failed-dump.log';
/** Why a generation was quarantined, inside its quarantine folder. */
export const QUARANTINE_REASON_FILE = 'quarantine-reason.txt';
/** One line per restore of a generation, removed once one succeeds: lines found at start are restores that never finished. */
export const RESTORE_ATTEMPT_FILE = 'restore-attempt';

export interface Metadata {
  readonly format: number;
  readonly generation: number;
  readonly created: string;
  readonly argv: readonly string[];
  readonly appVersion: string;
  /** sha256 of argv and app version: a checkpoint of another app is never restored. */
  readonly fingerprint: string;
  readonly appPid: number;
  readonly stdio: readonly FdIdentity[];
  readonly criuVersion: string;
  readonly stasisVersion: string;
  readonly mode: 'continue' | 'exit';
  /** Size of every file of the generation at commit (stasis.json itself excluded): a truncated image is caught before criu runs. */
  readonly images?: Readonly<Record<string, number>>;
  /** Files and folders of the container's own filesystem saved in files/, put back before criu restores. */
  readonly files?: readonly PreservedEntry[];
  readonly dump: {
    readonly duration_ms: number;
    readonly criu_ms: number;
    readonly bytes: number;
    readonly preserved_files?: number;
    readonly preserved_bytes?: number;
    readonly stats?: DumpStats;
  };
}

export function generationName(generation: number): string {
  return `gen-${String(generation).padStart(6, '0')}`;
}

export function parseGenerationName(name: string): number | undefined {
  const match = /^gen-(\d{6,})$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

export function fingerprint(argv: readonly string[], appVersion: string): string {
  return createHash('sha256').update(JSON.stringify({ argv, appVersion })).digest('hex');
}

export type Verdict =
  | { readonly kind: 'restorable'; readonly metadata: Metadata }
  /** Not ours to judge (another app's checkpoint): left alone, never restored. */
  | { readonly kind: 'foreign'; readonly reason: string }
  /** Broken: moved to quarantine so it is never tried again. */
  | { readonly kind: 'broken'; readonly reason: string };

const REQUIRED_IMAGES = ['inventory.img', 'pstree.img'];

/**
 * Pure: can this generation be restored for the app with `expected` fingerprint?
 * With `sizes` (file name -> bytes now), files must still have the sizes stasis.json recorded.
 */
export function judgeGeneration(
  metadataText: string | undefined,
  files: readonly string[],
  expected: string,
  sizes?: Readonly<Record<string, number>>,
): Verdict {
  if (metadataText === undefined) return { kind: 'broken', reason: `${METADATA_FILE} is missing` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(metadataText);
  } catch {
    return { kind: 'broken', reason: `${METADATA_FILE} is not valid JSON` };
  }
  if (typeof parsed !== 'object' || parsed === null) return { kind: 'broken', reason: `${METADATA_FILE} is not an object` };
  const metadata = parsed as Partial<Metadata>;
  if (typeof metadata.format !== 'number') return { kind: 'broken', reason: `${METADATA_FILE} has no format version` };
  if (metadata.format > FORMAT_VERSION) {
    return { kind: 'broken', reason: `${METADATA_FILE} has format ${metadata.format}; this stasis reads up to ${FORMAT_VERSION}` };
  }
  if (typeof metadata.fingerprint !== 'string' || !Array.isArray(metadata.stdio) || !Array.isArray(metadata.argv)) {
    return { kind: 'broken', reason: `${METADATA_FILE} lacks fingerprint, argv or stdio` };
  }
  if (metadata.fingerprint !== expected) {
    const version = typeof metadata.appVersion === 'string' ? ` version ${JSON.stringify(metadata.appVersion)}` : '';
    return { kind: 'foreign', reason: `made for another command or app version: ${JSON.stringify(metadata.argv)}${version}` };
  }
  const missing = REQUIRED_IMAGES.filter((image) => !files.includes(image));
  if (missing.length > 0) return { kind: 'broken', reason: `images missing: ${missing.join(', ')}` };
  if (sizes !== undefined && typeof metadata.images === 'object' && metadata.images !== null) {
    const wrong = Object.entries(metadata.images)
      .filter(([name, size]) => sizes[name] !== size)
      .map(([name, size]) => `${name} is ${sizes[name] === undefined ? 'missing' : `${sizes[name]} bytes`}, expected ${size}`);
    if (wrong.length > 0) return { kind: 'broken', reason: `images damaged (truncated or changed since the dump): ${wrong.slice(0, 5).join('; ')}` };
  }
  return { kind: 'restorable', metadata: metadata as Metadata };
}

/** Pure: which generations to delete so that the newest `keep` remain. */
export function generationsToPrune(generations: readonly number[], keep: number): number[] {
  return [...generations].sort((a, b) => b - a).slice(keep);
}
