/**
 * The preStop hook never exits 137. `stasis checkpoint --exit` runs inside the
 * container (`runc exec`, as a Kubernetes preStop exec hook does); stasis answers,
 * then exits, and its exit as PID 1 SIGKILLs whatever still runs in the PID
 * namespace - the hook too, if it has printed its answer but not yet exited. stasis
 * therefore waits for the hook's process, not its socket (src/control.ts). The race
 * shows under load, so both CPUs are kept busy by a load generator meanwhile.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { capabilitiesFor } from '../helpers/oci.js';
import { ROOTFS_ENV, RuncContainer, buildRootfs, missingRuncTools } from '../helpers/runc.js';

/** 200 in CI (the number); STASIS_PRESTOP_HOOKS asks for more or fewer. */
const HOOKS = Number(process.env.STASIS_PRESTOP_HOOKS ?? 200);
/** Containers in flight at once: a runc start is partly waiting, so lanes keep the run shorter. */
const LANES = 3;
/** Busy loops at the tests' own priority, one per CPU of the CI machine. */
const LOAD = Number(process.env.STASIS_PRESTOP_LOAD ?? 2);
const VOLUME = '/var/lib/stasis';
const HOOK = ['/usr/local/bin/stasis', 'checkpoint', '--exit', '--timeout', '60s'];
const COMMITTED = /^checkpoint committed: generation 1, .*\(exit\)\n$/;
/** A hook script that runs on after stasis answered: its shell must not be killed either. */
const SCRIPT = (after: string): string[] => ['/bin/sh', '-c', `/usr/local/bin/stasis checkpoint --exit --timeout 60s && ${after}echo hook done`];
const SCRIPT_DONE = /^checkpoint committed: generation 1, .*\(exit\)\nhook done\n$/;

let rootfs = '';
const load: ChildProcess[] = [];
const volumes: string[] = [];

beforeAll(() => {
  const missing = missingRuncTools();
  if (missing) throw new Error(missing);
  rootfs = buildRootfs();
  for (let i = 0; i < LOAD; i++) load.push(spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
}, 60 * 60_000);

afterAll(() => {
  for (const child of load.splice(0)) child.kill('SIGKILL');
  for (const dir of volumes.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * One container's life: a fresh start (a new, empty volume: a restore would only make
 * each round slower; runc.test.ts covers hook-then-restore), the hook, the container's end.
 */
async function oneHook(round: number, hookArgs: readonly string[], expectOut: RegExp): Promise<string | null> {
  const hostVolume = mkdtempSync(join(tmpdir(), 'stasis-prestop-'));
  volumes.push(hostVolume);
  const container = new RuncContainer({
    rootfs,
    args: ['/usr/local/bin/stasis', '--', '/app/counter.sh'],
    env: { ...ROOTFS_ENV, STASIS_DIR: `${VOLUME}/checkpoints` },
    capabilities: capabilitiesFor('minimal'),
    volumes: { [hostVolume]: VOLUME },
  });
  try {
    await container.waitForEvent('app started', 60_000);
    const hook = await container.execAsync(hookArgs);
    const end = await container.finished(60_000);
    if (hook.code !== 0 || !expectOut.test(hook.stdout)) {
      return `round ${round}: hook exited ${hook.code ?? hook.signal} (${hook.code === 137 ? 'SIGKILLed' : 'failed'}): ${hook.stdout}${hook.stderr}`;
    }
    if (end.code !== 0) return `round ${round}: container exited ${end.code}: ${end.raw.slice(-2000)}`;
    return null;
  } finally {
    container.remove();
    rmSync(hostVolume, { recursive: true, force: true });
  }
}

test('a hook script that sleeps after `stasis checkpoint --exit` answered still exits 0: stasis waits for the hook, not its socket', async () => {
  for (let round = 0; round < 3; round++) expect(await oneHook(round, SCRIPT('sleep 0.5; '), SCRIPT_DONE)).toBeNull();
}, 5 * 60_000);

test(`the preStop hook (runc exec: stasis checkpoint --exit, every other one in a shell script) succeeds ${HOOKS} times in a row with both CPUs busy`, async () => {
  const started = performance.now();
  const lanes = Array.from({ length: LANES }, async (_, lane) => {
    const failures: string[] = [];
    for (let round = lane; round < HOOKS; round += LANES) {
      const failure = round % 2 === 0 ? await oneHook(round, HOOK, COMMITTED) : await oneHook(round, SCRIPT(''), SCRIPT_DONE);
      if (failure !== null) failures.push(failure);
    }
    return failures;
  });
  const failures = (await Promise.all(lanes)).flat();
  console.log(`preStop stress: ${HOOKS} hooks in ${Math.round(performance.now() - started)} ms, ${failures.length} failures`);
  expect(failures).toEqual([]);
}, 15 * 60_000);
