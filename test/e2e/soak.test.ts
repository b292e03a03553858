/**
 * Soak (issue 7): 50 consecutive dump/restore cycles of the counter app, each in a
 * new container. No line may be lost or repeated across them, and stasis must not
 * leak file descriptors or leave zombie children.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Container, counts, fdCount, missingCriu, zombieChildren } from '../helpers/container.js';
import { fixture, poll, stasisCheckpoint } from '../helpers/stasis.js';

const CYCLES = 50;
/** For one container to show ticks: generous, other suites share the 2 cores and the disk. */
const WAIT = 60_000;
const COUNTER = [fixture('counter.sh')];
const base = mkdtempSync(join(tmpdir(), 'stasis-soak-'));
let current: Container | null = null;

beforeAll(() => {
  const missing = missingCriu();
  if (missing) throw new Error(missing);
});

afterAll(async () => {
  await current?.kill();
  rmSync(base, { recursive: true, force: true });
});

const checkpoint = (socket: string, ...args: string[]) => stasisCheckpoint(['--socket', socket, ...args]);

interface Cycle {
  readonly fds: number;
  readonly zombies: number;
  readonly restored: number | undefined;
}

test(`${CYCLES} dump/restore cycles: every line exactly once, no fd or zombie leak in stasis`, async () => {
  const dir = join(base, 'checkpoints');
  // STASIS_KEEP=1 keeps the volume small; continue mode for the mid-cycle dump,
  // SIGUSR2 with STASIS_AFTER_DUMP=exit ends each container.
  const env = { STASIS_DIR: dir, STASIS_SOCKET: join(base, 'control.sock'), STASIS_KEEP: '1', STASIS_AFTER_DUMP: 'exit' };
  const stdout: string[] = [];
  const stderr: string[] = [];
  const cycles: Cycle[] = [];
  let generation = 0;
  const restoredExpected: number[] = [];
  for (let i = 1; i <= CYCLES; i++) {
    if (i > 1) restoredExpected.push(generation);
    const c = new Container(COUNTER, env);
    current = c;
    const before = counts(stdout, 'tick').at(-1) ?? 0;
    await c.waitForStdout((lines) => counts(lines, 'tick').length >= 2, `ticks in container ${i}`, WAIT);
    const stasis = await c.stasisPid();
    // the same moment in every container: the app runs, no dump or restore is in flight
    const fds = fdCount(stasis);
    const zombies = zombieChildren(stasis).length;
    // the restored app may print before stasis logs "restored"
    const restored = i === 1 ? undefined : ((await c.waitForEvent('restored', WAIT)).generation as number);
    cycles.push({ fds, zombies, restored });
    if (i === 1 || i === CYCLES) {
      // the first and the last stasis also run continue-mode dumps over the control socket:
      // afterwards they hold the same descriptors as before and have no zombie child
      for (let k = 0; k < 3; k++) {
        const answer = await checkpoint(env.STASIS_SOCKET, '--continue');
        expect(answer.code, answer.stderr).toBe(0);
        generation++;
      }
      await poll(`stasis back to ${fds} fds after the dumps (now ${fdCount(stasis)})`, () => (fdCount(stasis) === fds ? true : undefined), 5000);
      expect(zombieChildren(stasis)).toEqual([]);
    }
    expect(counts(c.stdout(), 'tick')[0], `container ${i} continues after tick ${before}`).toBe(before + 1);
    await c.signal('SIGUSR2');
    const end = await poll(
      `the dump of container ${i} to end`,
      () => c.events().find((event) => event.msg === 'dump committed' && event.mode === 'exit') ?? c.events().find((event) => event.msg.startsWith('dump failed')),
      2 * WAIT,
    );
    expect(end.msg, `container ${i}: ${JSON.stringify(end)}`).toBe('dump committed');
    const result = await c.finished();
    generation++;
    current = null;
    expect(result.code, `container ${i}: ${result.raw.slice(-2000)}`).toBe(0);
    stdout.push(...result.stdout);
    stderr.push(...result.stderr);
  }
  const ticks = counts(stdout, 'tick');
  const errs = counts(stderr, 'err');
  expect(ticks.length).toBeGreaterThan(CYCLES * 2);
  expect(ticks).toEqual(ticks.map((_, i) => i + 1));
  expect(errs).toEqual(errs.map((_, i) => i + 1));
  expect(cycles[0]?.restored).toBeUndefined();
  expect(cycles.slice(1).map((cycle) => cycle.restored)).toEqual(restoredExpected);
  const first = cycles[0] as Cycle;
  const last = cycles.at(-1) as Cycle;
  expect(last.fds, JSON.stringify(cycles.map((cycle) => cycle.fds))).toBe(first.fds);
  expect(cycles.map((cycle) => cycle.zombies)).toEqual(cycles.map(() => 0));
  expect(readdirSync(dir).filter((name) => name.startsWith('gen-'))).toEqual([`gen-${String(generation).padStart(6, '0')}`]);
  expect(readdirSync(dir)).not.toContain('quarantine');
}, 600_000);
