import { describe, expect, test } from 'vitest';
import { FORMAT_VERSION, fingerprint, generationName, generationsToPrune, judgeGeneration, parseGenerationName } from '../../src/checkpoint/layout.js';
import { toResponse } from '../../src/checkpoint/controller.js';
import { formatResponse, parseRequest } from '../../src/control.js';

const argv = ['/app/counter.sh'];
const expected = fingerprint(argv, '');
const images = ['inventory.img', 'pstree.img', 'core-10000.img'];
const metadata = (extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ format: FORMAT_VERSION, fingerprint: expected, argv, stdio: [], ...extra });

describe('generation names', () => {
  test('zero-padded and parsed back; anything else is not a generation', () => {
    expect(generationName(7)).toBe('gen-000007');
    expect(parseGenerationName('gen-000007')).toBe(7);
    expect(parseGenerationName('gen-1234567')).toBe(1234567);
    expect(parseGenerationName('gen-7')).toBeUndefined();
    expect(parseGenerationName('.incoming-abc')).toBeUndefined();
  });

  test('pruning keeps the newest KEEP', () => {
    expect(generationsToPrune([3, 1, 4, 2], 2)).toEqual([2, 1]);
    expect(generationsToPrune([1], 2)).toEqual([]);
  });
});

describe('judgeGeneration', () => {
  test('a complete generation of this app is restorable', () => {
    expect(judgeGeneration(metadata(), images, expected).kind).toBe('restorable');
  });

  test('the fingerprint covers argv and the app version', () => {
    expect(fingerprint(argv, 'v2')).not.toBe(expected);
    expect(fingerprint(['/app/counter.sh', '1'], '')).not.toBe(expected);
    expect(judgeGeneration(metadata({ fingerprint: fingerprint(argv, 'v2') }), images, expected)).toMatchObject({ kind: 'foreign' });
  });

  test.each([
    ['missing stasis.json', undefined, images, /stasis.json is missing/],
    ['not JSON', '{', images, /not valid JSON/],
    ['future format', metadata({ format: FORMAT_VERSION + 1 }), images, /format 2; this stasis reads up to 1/],
    ['no fingerprint', JSON.stringify({ format: 1 }), images, /lacks fingerprint/],
    ['images missing', metadata(), ['inventory.img'], /images missing: pstree.img/],
  ])('%s is broken', (_, text, files, reason) => {
    const verdict = judgeGeneration(text, files, expected);
    expect(verdict.kind).toBe('broken');
    expect(verdict.kind === 'broken' && verdict.reason).toMatch(reason);
  });
});

describe('control protocol', () => {
  test('requests', () => {
    expect(parseRequest('{"op":"checkpoint"}')).toEqual({ op: 'checkpoint' });
    expect(parseRequest('{"op":"checkpoint","mode":"exit"}')).toEqual({ op: 'checkpoint', mode: 'exit' });
    expect(parseRequest('nope')).toEqual({ error: 'bad request: not JSON' });
    expect(parseRequest('{"op":"restore"}')).toMatchObject({ error: expect.stringMatching(/unknown op "restore"/) });
    expect(parseRequest('{"op":"checkpoint","mode":"later"}')).toMatchObject({ error: expect.stringMatching(/mode "later"/) });
  });

  test('answers and the one-line summary', () => {
    const ok = toResponse({ ok: true, generation: 3, bytes: 5 * 1024 * 1024, durationMs: 120, mode: 'continue', stats: { frozen_time_us: 15613 } });
    expect(ok).toEqual({ ok: true, generation: 3, bytes: 5242880, duration_ms: 120, frozen_ms: 16, mode: 'continue' });
    expect(formatResponse(ok)).toBe('checkpoint committed: generation 3, 5.0 MiB, app frozen 16 ms, took 120 ms (continue)');
    const failed = toResponse({ ok: false, error: 'Dumping FAILED.', criuErrors: ['Error (x): y', 'Dumping FAILED.'] });
    expect(formatResponse(failed)).toBe('checkpoint failed: Dumping FAILED.\n  Error (x): y\n  Dumping FAILED.');
  });
});
