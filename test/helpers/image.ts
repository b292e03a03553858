/**
 * The image of Dockerfile.example for the podman and containerd end-to-end tests:
 * scripts/build-image.sh builds it with buildah (cached by content hash), and
 * scripts/lib/containers-env.sh gives podman and buildah their configuration here.
 */
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { onPath } from './runc.js';
import { ROOT } from './stasis.js';

const BUILD_IMAGE = join(ROOT, 'scripts/build-image.sh');
const CONTAINERS_ENV = join(ROOT, 'scripts/lib/containers-env.sh');
export const SETUP_RUNTIMES = 'scripts/setup-runtimes.sh';

/** Where the checkpoint volume is mounted in the image, and STASIS_DIR inside it (the image's ENV). */
export const VOLUME = '/var/lib/stasis';

/** Why a runtime test cannot run here, or null. The test fails with this text; it never skips. */
export function missingTools(test: string, tools: readonly string[]): string | null {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('it must run as root');
  for (const tool of tools) if (!onPath(tool)) problems.push(`${tool} is not installed`);
  return problems.length === 0 ? null : `${test}: ${problems.join('; ')}. Run: bash ${SETUP_RUNTIMES} (as root), then npm run build`;
}

/** CONTAINERS_CONF and CONTAINERS_STORAGE_CONF (and the files they name), as scripts/lib/containers-env.sh writes them. */
export function containersEnv(): Record<string, string> {
  const result = spawnSync('bash', [CONTAINERS_ENV], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${CONTAINERS_ENV} failed: ${result.stderr}`);
  return Object.fromEntries(result.stdout.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

/** Removes every container of the tests' podman/buildah storage and unmounts what it left. */
export function cleanupContainers(): void {
  spawnSync('bash', [CONTAINERS_ENV, '--cleanup'], { stdio: 'ignore', timeout: 120_000 });
}

/** Builds (or reuses) the image with the current dist/stasis: its reference, or with archive its docker-archive file. */
export function buildImage(options: { readonly archive?: boolean } = {}): string {
  const result = spawnSync('bash', [BUILD_IMAGE, ...(options.archive ? ['--archive'] : [])], { cwd: ROOT, encoding: 'utf8', timeout: 30 * 60_000 });
  if (result.status !== 0) throw new Error(`scripts/build-image.sh failed (status ${result.status}):\n${result.stderr}`);
  const last = result.stdout.trim().split('\n').at(-1);
  if (!last) throw new Error(`scripts/build-image.sh printed nothing:\n${result.stderr}`);
  return last;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A runtime's command line, without blocking the event loop (the containers' output readers keep running). */
export function run(command: string, args: readonly string[], env: Readonly<Record<string, string>> = {}, ms = 120_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(command, args, { env: { ...process.env, ...env }, timeout: ms, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** run(), throwing with the command's output when it fails. */
export async function mustRun(command: string, args: readonly string[], env: Readonly<Record<string, string>> = {}, ms = 120_000): Promise<string> {
  const result = await run(command, args, env, ms);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.code}): ${result.stderr}${result.stdout}`);
  return result.stdout;
}
