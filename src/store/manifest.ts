/**
 * Pure: the remote layout of generations and the decisions made on it.
 *   PREFIX/gen-000007-1a2b3c4d/<file>.zst   the images (compressed), one object per file
 *   PREFIX/gen-000007-1a2b3c4d/manifest.json written last: the commit
 *   PREFIX/current                          the id of the newest committed generation
 *   PREFIX/quarantine/gen-.../              damaged generations, with reason.txt
 * The writer part (random per stasis start) keeps two writers of one prefix apart: each
 * only ever writes objects under its own names, so neither can damage the other's.
 */

export const MANIFEST = 'manifest.json';
export const CURRENT = 'current';
export const QUARANTINE = 'quarantine';
export const REASON = 'reason.txt';
export const MANIFEST_FORMAT = 1;

export type Compression = 'zstd' | 'none';
export type Encryption = 'none' | 'aes-256-gcm';

export interface RemoteFile {
  /** path inside the generation folder, e.g. `pages-1.img` or `files/tmp/data` */
  readonly path: string;
  /** the object's name inside the generation's folder */
  readonly object: string;
  readonly size: number;
  readonly sha256: string;
  /** as stored: compressed (and encrypted) */
  readonly storedSize: number;
  readonly storedSha256: string;
  /** set when it differs from the manifest's: a file zstd would not shrink is stored as is */
  readonly compression?: Compression;
}

export interface RemoteManifest {
  readonly format: number;
  readonly id: string;
  readonly generation: number;
  readonly writer: string;
  readonly created: string;
  readonly fingerprint: string;
  readonly compression: Compression;
  readonly encryption: Encryption;
  readonly bytes: number;
  readonly storedBytes: number;
  readonly files: readonly RemoteFile[];
}

export function generationId(generation: number, writer: string): string {
  return `gen-${String(generation).padStart(6, '0')}-${writer}`;
}

export function parseGenerationId(id: string): { generation: number; writer: string } | undefined {
  const match = /^gen-(\d{6,})-([0-9a-f]{8})$/.exec(id);
  return match ? { generation: Number(match[1]), writer: match[2] as string } : undefined;
}

export function objectName(path: string, compression: Compression, encryption: Encryption): string {
  return `${path}${compression === 'zstd' ? '.zst' : ''}${encryption === 'aes-256-gcm' ? '.enc' : ''}`;
}

export interface Listed {
  /** key relative to the prefix, e.g. `gen-000007-1a2b3c4d/manifest.json` */
  readonly name: string;
  readonly size: number;
  readonly modified: number;
}

export interface RemoteGeneration {
  readonly id: string;
  readonly generation: number;
  readonly committed: boolean;
  readonly objects: number;
  readonly storedBytes: number;
  /** newest object's time, ms since the epoch */
  readonly modified: number;
}

/** Pure: the generations a listing of the prefix holds, newest first (number, then time). */
export function generationsIn(listing: readonly Listed[]): RemoteGeneration[] {
  const byId = new Map<string, { committed: boolean; objects: number; storedBytes: number; modified: number }>();
  for (const entry of listing) {
    const slash = entry.name.indexOf('/');
    if (slash < 0) continue;
    const id = entry.name.slice(0, slash);
    if (parseGenerationId(id) === undefined) continue;
    const seen = byId.get(id) ?? { committed: false, objects: 0, storedBytes: 0, modified: 0 };
    byId.set(id, {
      committed: seen.committed || entry.name === `${id}/${MANIFEST}`,
      objects: seen.objects + 1,
      storedBytes: seen.storedBytes + entry.size,
      modified: Math.max(seen.modified, entry.modified),
    });
  }
  return [...byId.entries()]
    .map(([id, seen]) => ({ id, generation: parseGenerationId(id)?.generation ?? 0, ...seen }))
    .sort((a, b) => b.generation - a.generation || b.modified - a.modified);
}

/** An upload that never got its manifest is someone's dump in progress until it is this old. */
export const ABANDONED_MS = 60 * 60_000;

/**
 * Pure: which generation folders to delete so the newest `keep` committed ones remain,
 * plus uncommitted leftovers older than the oldest kept one that nobody wrote to for
 * ABANDONED_MS (a failed upload whose clean-up failed too).
 */
export function remoteToPrune(generations: readonly RemoteGeneration[], keep: number, now: number): string[] {
  const committed = generations.filter((g) => g.committed);
  const kept = committed.slice(0, keep);
  const oldestKept = kept.at(-1)?.generation ?? 0;
  const doomed = committed.slice(keep).map((g) => g.id);
  const abandoned = generations.filter((g) => !g.committed && g.generation < oldestKept && now - g.modified > ABANDONED_MS).map((g) => g.id);
  return [...doomed, ...abandoned];
}

/** Pure: a manifest from its text, or why it is not one. */
export function parseManifest(text: string, id: string): RemoteManifest | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return `${MANIFEST} is not valid JSON`;
  }
  if (typeof value !== 'object' || value === null) return `${MANIFEST} is not an object`;
  const m = value as Partial<Record<keyof RemoteManifest, unknown>>;
  if (typeof m.format !== 'number' || m.format > MANIFEST_FORMAT) return `${MANIFEST} has format ${String(m.format)}; this stasis reads up to ${MANIFEST_FORMAT}`;
  if (m.id !== id) return `${MANIFEST} names generation ${String(m.id)}, not ${id}`;
  if (typeof m.fingerprint !== 'string' || typeof m.generation !== 'number' || !Array.isArray(m.files)) return `${MANIFEST} lacks fingerprint, generation or files`;
  if (m.compression !== 'zstd' && m.compression !== 'none') return `${MANIFEST} has unknown compression ${String(m.compression)}`;
  if (m.encryption !== 'none' && m.encryption !== 'aes-256-gcm') return `${MANIFEST} has unknown encryption ${String(m.encryption)}`;
  for (const file of m.files as unknown[]) {
    const f = file as Partial<Record<keyof RemoteFile, unknown>>;
    const valid =
      typeof f.path === 'string' &&
      typeof f.object === 'string' &&
      safeRelative(f.path) &&
      safeRelative(f.object) &&
      typeof f.size === 'number' &&
      typeof f.storedSize === 'number' &&
      typeof f.sha256 === 'string' &&
      typeof f.storedSha256 === 'string' &&
      (f.compression === undefined || f.compression === 'zstd' || f.compression === 'none');
    if (!valid) return `${MANIFEST} has a malformed file entry: ${JSON.stringify(file).slice(0, 200)}`;
  }
  return value as RemoteManifest;
}

/** A path that stays inside the generation folder. */
function safeRelative(path: string): boolean {
  return path !== '' && !path.startsWith('/') && path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}
