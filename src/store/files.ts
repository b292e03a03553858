import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface LocalFile {
  /** relative to the generation folder, `/`-separated */
  readonly path: string;
  readonly size: number;
}

/** Every regular file below a generation folder (criu's images, stasis.json, files/...), biggest first. */
export async function generationFiles(root: string): Promise<LocalFile[]> {
  const found: LocalFile[] = [];
  const walk = async (relative: string): Promise<void> => {
    for (const name of await readdir(join(root, relative))) {
      const path = relative === '' ? name : `${relative}/${name}`;
      const info = await lstat(join(root, path));
      if (info.isDirectory()) await walk(path);
      else if (info.isFile()) found.push({ path, size: info.size });
    }
  };
  await walk('');
  return found.sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1));
}
