import { constants } from 'node:fs';
import { access, chmod, lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, rename, rm, statfs, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CURRENT_LINK,
  INCOMING_PREFIX,
  METADATA_FILE,
  QUARANTINE_DIR,
  QUARANTINE_REASON_FILE,
  generationName,
  generationsToPrune,
  judgeGeneration,
  parseGenerationName,
  type Metadata,
  type Verdict,
} from './layout.js';
import { explainFsError } from '../criu/log.js';

/** The checkpoint directory cannot be used; checkpoints are off and the app starts fresh. */
export class StoreRefused extends Error {}

export interface Generation {
  readonly generation: number;
  readonly name: string;
  readonly path: string;
}

/**
 * Opens (creating it 0700 if needed) the checkpoint root, refusing one that others
 * could write to - images hold the app's whole memory - and clearing dumps that
 * were interrupted.
 */
export async function openStore(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  if (info.isSymbolicLink()) throw new StoreRefused(`${dir} is a symbolic link; point STASIS_DIR at the real directory`);
  if (!info.isDirectory()) throw new StoreRefused(`${dir} is not a directory`);
  const uid = process.getuid?.() ?? 0;
  if (info.uid !== uid) throw new StoreRefused(`${dir} is owned by uid ${info.uid}, not by stasis (uid ${uid})`);
  if ((info.mode & 0o022) !== 0) {
    throw new StoreRefused(`${dir} is writable by group or others (mode ${(info.mode & 0o777).toString(8)}); chmod 700 it`);
  }
  for (const name of await readdir(dir)) {
    if (name.startsWith(INCOMING_PREFIX)) await rm(join(dir, name), { recursive: true, force: true });
  }
  return dir;
}

export async function listGenerations(dir: string): Promise<Generation[]> {
  const result: Generation[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const generation = parseGenerationName(name);
    if (generation === undefined) continue;
    const path = join(dir, name);
    if ((await lstat(path)).isDirectory()) result.push({ generation, name, path });
  }
  return result.sort((a, b) => b.generation - a.generation);
}

export async function judge(generation: Generation, expectedFingerprint: string): Promise<Verdict> {
  const text = await readFile(join(generation.path, METADATA_FILE), 'utf8').catch(() => undefined);
  const sizes = await imageSizes(generation.path);
  return judgeGeneration(text, Object.keys(sizes), expectedFingerprint, sizes);
}

export async function beginIncoming(dir: string): Promise<string> {
  const path = await mkdtemp(join(dir, INCOMING_PREFIX));
  await chmod(path, 0o700);
  return path;
}

async function fsyncPath(path: string, flags = constants.O_RDONLY): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes every image owner-only and durable before the generation becomes visible. */
async function sealFiles(dir: string): Promise<number> {
  let bytes = 0;
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const info = await lstat(path);
    if (!info.isFile()) continue;
    await chmod(path, 0o600);
    await fsyncPath(path);
    bytes += info.size;
  }
  await fsyncPath(dir);
  return bytes;
}

/** Size of every regular file in `dir`, by name: the manifest stasis.json records and restore checks. */
export async function imageSizes(dir: string): Promise<Record<string, number>> {
  // side by side: on the restore's critical path, one thread-pool round trip instead of one per image
  const names = (await readdir(dir)).sort();
  const infos = await Promise.all(names.map((name) => lstat(join(dir, name))));
  const sizes: Record<string, number> = {};
  names.forEach((name, i) => {
    const info = infos[i];
    if (info?.isFile() === true) sizes[name] = info.size;
  });
  return sizes;
}

export async function imageBytes(dir: string): Promise<number> {
  let bytes = 0;
  for (const name of await readdir(dir)) {
    const info = await lstat(join(dir, name));
    if (info.isFile()) bytes += info.size;
  }
  return bytes;
}

/** Highest generation number ever used here, quarantine included, so numbers never repeat. */
async function lastGenerationNumber(dir: string): Promise<number> {
  const names = [...(await readdir(dir)), ...(await readdir(join(dir, QUARANTINE_DIR)).catch(() => [] as string[]))];
  let last = 0;
  for (const name of names) {
    const generation = parseGenerationName(name.replace(/\..*$/, ''));
    if (generation !== undefined && generation > last) last = generation;
  }
  return last;
}

export async function nextGenerationNumber(dir: string): Promise<number> {
  return (await lastGenerationNumber(dir)) + 1;
}

/**
 * Publishes a finished dump: metadata written, every file fsynced, the incoming
 * folder renamed to gen-N, then `current` switched by renaming a new symlink over it.
 */
export async function commit(dir: string, incoming: string, metadata: Metadata): Promise<Generation> {
  const name = generationName(metadata.generation);
  await writeFile(join(incoming, METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`, { mode: 0o600 });
  await sealFiles(incoming);
  const path = join(dir, name);
  await rename(incoming, path);
  await pointCurrentAt(dir, name);
  return { generation: metadata.generation, name, path };
}

export async function pointCurrentAt(dir: string, name: string | null): Promise<void> {
  const link = join(dir, CURRENT_LINK);
  if (name === null) {
    await rm(link, { force: true });
  } else {
    const temporary = join(dir, `.${CURRENT_LINK}-${process.pid}-${Date.now()}`);
    await symlink(name, temporary);
    await rename(temporary, link);
  }
  await fsyncPath(dir);
}

export async function currentName(dir: string): Promise<string | null> {
  return readlink(join(dir, CURRENT_LINK)).catch(() => null);
}

/** Deletes all but the newest `keep` generations. */
export async function prune(dir: string, keep: number): Promise<string[]> {
  const generations = await listGenerations(dir);
  const doomed = new Set(generationsToPrune(generations.map((g) => g.generation), keep));
  const removed: string[] = [];
  for (const generation of generations) {
    if (!doomed.has(generation.generation)) continue;
    await rm(generation.path, { recursive: true, force: true });
    removed.push(generation.name);
  }
  return removed;
}

/** Moves a generation that must never be tried again to quarantine/, with the reason beside it. */
export async function quarantine(dir: string, generation: Generation, reason: string): Promise<string> {
  const quarantineDir = join(dir, QUARANTINE_DIR);
  await mkdir(quarantineDir, { recursive: true, mode: 0o700 });
  const target = join(quarantineDir, `${generation.name}.${new Date().toISOString().replace(/[:.]/g, '-')}`);
  await rename(generation.path, target);
  // a full volume must not stop the quarantine: the move above is what counts
  await writeFile(join(target, QUARANTINE_REASON_FILE), `${reason}\n`, { mode: 0o600 }).catch(() => undefined);
  const remaining = await listGenerations(dir);
  if ((await currentName(dir)) === generation.name) await pointCurrentAt(dir, remaining[0]?.name ?? null);
  return target;
}

/**
 * Why a file operation in the checkpoint directory failed, in words an operator can act
 * on: a full, over-quota or read-only volume is named as such (Node's recursive mkdir
 * reports ENOENT on a read-only volume, so the directory is probed with access(2)).
 */
export async function describeFsFailure(dir: string, error: unknown): Promise<string> {
  const direct = explainFsError((error as NodeJS.ErrnoException).code, dir);
  if (direct !== undefined) return direct;
  const probe = await access(dir, constants.W_OK).then(
    () => undefined,
    (problem: NodeJS.ErrnoException) => explainFsError(problem.code, dir),
  );
  return probe ?? `cannot write to ${dir}: ${(error as Error).message}`;
}

/** True when the volume of `dir` has less than 1 MiB left: the likely cause of a failed dump whose log was cut short. */
export async function volumeFull(dir: string): Promise<boolean> {
  return statfs(dir).then(
    (info) => info.bavail * info.bsize < 1 << 20,
    () => false,
  );
}
