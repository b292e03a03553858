import { describe, expect, test } from 'vitest';
import { describeS3Error } from '../../src/store/client.js';
import { eachLimit } from '../../src/store/limit.js';
import { expandLocation, keyOf, parseStoreUrl } from '../../src/store/location.js';
import { ABANDONED_MS, generationId, generationsIn, objectName, parseGenerationId, parseManifest, remoteToPrune, type Listed } from '../../src/store/manifest.js';
import { parseKey } from '../../src/store/open.js';
import { keyCheckOf } from '../../src/store/target.js';
import { judgeStore, type StoreFacts } from '../../src/store/doctor.js';

describe('s3:// locations', () => {
  test('bucket and prefix, slashes trimmed, {hostname} kept until expanded', () => {
    expect(parseStoreUrl('s3://my-bucket/pods/{hostname}/')).toEqual({ bucket: 'my-bucket', prefix: 'pods/{hostname}' });
    expect(parseStoreUrl('s3://my.bucket')).toEqual({ bucket: 'my.bucket', prefix: '' });
    expect(expandLocation({ bucket: 'b-b', prefix: 'x/{hostname}/{hostname}' }, 'web-0')).toEqual({ bucket: 'b-b', prefix: 'x/web-0/web-0' });
  });
  test.each(['', 'bucket/x', 's3://', 's3://ab', 's3://Upper', 's3://-b-/x', 's3://a..b', 's3://b-b/a//c', 's3://b-b/./x', 's3://b-b/{pod}', 's3://b-b/{hostname'])('%j is refused', (url) => {
    expect(parseStoreUrl(url)).toBeUndefined();
  });
  test('keys join the prefix, or stand alone at the root', () => {
    expect(keyOf({ bucket: 'b', prefix: 'p/q' }, 'gen-000001-0a0b0c0d', 'manifest.json')).toBe('p/q/gen-000001-0a0b0c0d/manifest.json');
    expect(keyOf({ bucket: 'b', prefix: '' }, 'current')).toBe('current');
  });
});

describe('remote generations', () => {
  const listed = (name: string, modified = 1000, size = 10): Listed => ({ name, size, modified });

  test('ids carry the number and the writer; object names say how they are coded', () => {
    expect(generationId(7, '0a0b0c0d')).toBe('gen-000007-0a0b0c0d');
    expect(parseGenerationId('gen-000007-0a0b0c0d')).toEqual({ generation: 7, writer: '0a0b0c0d' });
    expect(parseGenerationId('gen-000007')).toBeUndefined();
    expect(objectName('files/tmp/x', 'zstd', 'aes-256-gcm')).toBe('files/tmp/x.zst.enc');
    expect(objectName('pages-1.img', 'none', 'none')).toBe('pages-1.img');
  });

  test('a listing groups objects by generation, newest number first, then newest time; only a manifest commits', () => {
    const generations = generationsIn([
      listed('current'),
      listed('quarantine/gen-000009-aaaaaaaa/reason.txt'),
      listed('gen-000002-aaaaaaaa/pages-1.img.zst', 100, 50),
      listed('gen-000002-aaaaaaaa/manifest.json', 200),
      listed('gen-000003-bbbbbbbb/pages-1.img.zst', 300),
      listed('gen-000002-cccccccc/manifest.json', 400),
    ]);
    expect(generations.map((g) => [g.id, g.committed])).toEqual([
      ['gen-000003-bbbbbbbb', false],
      ['gen-000002-cccccccc', true],
      ['gen-000002-aaaaaaaa', true],
    ]);
    expect(generations[2]).toMatchObject({ objects: 2, storedBytes: 60, modified: 200 });
  });

  test('prune keeps the newest committed ones; an upload in progress is never pruned, an abandoned older one is', () => {
    const now = 10 * ABANDONED_MS;
    const generations = generationsIn([
      listed('gen-000005-aaaaaaaa/manifest.json', now),
      listed('gen-000004-aaaaaaaa/manifest.json', now),
      listed('gen-000003-aaaaaaaa/manifest.json', now),
      listed('gen-000006-bbbbbbbb/pages.img', now),
      listed('gen-000002-cccccccc/pages.img', now - ABANDONED_MS - 1),
      listed('gen-000001-dddddddd/pages.img', now - 1000),
    ]);
    expect(remoteToPrune(generations, 2, now).sort()).toEqual(['gen-000002-cccccccc', 'gen-000003-aaaaaaaa']);
  });

  test('a manifest is checked before it is trusted', () => {
    const good = { format: 1, id: 'gen-000001-0a0b0c0d', generation: 1, fingerprint: 'f', compression: 'zstd', encryption: 'none', files: [{ path: 'a.img', object: 'a.img.zst', size: 1, sha256: 'x', storedSize: 1, storedSha256: 'y' }] };
    expect(parseManifest(JSON.stringify(good), good.id)).toMatchObject({ id: good.id });
    expect(parseManifest('{', good.id)).toMatch(/not valid JSON/);
    expect(parseManifest(JSON.stringify(good), 'gen-000002-0a0b0c0d')).toMatch(/names generation/);
    expect(parseManifest(JSON.stringify({ ...good, format: 2 }), good.id)).toMatch(/format 2/);
    expect(parseManifest(JSON.stringify({ ...good, compression: 'lz4' }), good.id)).toMatch(/unknown compression/);
    for (const path of ['../etc/passwd', '/abs', 'a//b', '']) {
      expect(parseManifest(JSON.stringify({ ...good, files: [{ ...good.files[0], path }] }), good.id)).toMatch(/malformed file entry/);
    }
  });
});

describe('describeS3Error', () => {
  const where = { bucket: 'bk', endpoint: 'http://127.0.0.1:1' };
  test.each([
    [{ name: 'NoSuchBucket' }, 'bucket bk does not exist at http://127.0.0.1:1'],
    [{ name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 } }, 'credentials were refused'],
    [{ name: 'InvalidAccessKeyId' }, 'AWS_ACCESS_KEY_ID'],
    [{ name: 'AccessDenied' }, 'access denied to bucket bk'],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'cannot reach the object store at http://127.0.0.1:1 (ECONNREFUSED)'],
    [{ name: 'CredentialsProviderError', message: 'Could not load credentials' }, 'no AWS credentials found'],
    [new Error('Region is missing'), 'set AWS_REGION'],
  ])('%j', (error, words) => {
    expect(describeS3Error(error, where)).toContain(words);
  });
});

describe('encryption keys', () => {
  const raw = Buffer.alloc(32, 7);
  test('32 raw bytes, 64 hex digits or base64 of 32 bytes; a trailing newline is fine', () => {
    expect(parseKey(raw)).toEqual(raw);
    expect(parseKey(Buffer.from(`${raw.toString('hex')}\n`))).toEqual(raw);
    expect(parseKey(Buffer.from(`${raw.toString('base64')}\n`))).toEqual(raw);
  });
  test.each(['', 'short', 'ab'.repeat(31), Buffer.alloc(33, 1).toString('base64')])('%j is no key', (text) => {
    expect(parseKey(Buffer.from(text))).toBeUndefined();
  });
  test('the key check tells keys apart without being the key', () => {
    expect(keyCheckOf(null)).toBeNull();
    expect(keyCheckOf(raw)).toMatch(/^[0-9a-f]{16}$/);
    expect(keyCheckOf(raw)).not.toBe(keyCheckOf(Buffer.alloc(32, 8)));
    expect(raw.toString('hex')).not.toContain(keyCheckOf(raw));
  });
});

describe('eachLimit', () => {
  test('at most `limit` at once, results in order, the first failure after the rest settled', async () => {
    let running = 0;
    let most = 0;
    const work = async (n: number): Promise<number> => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 1));
      running--;
      if (n === 3) throw new Error('three');
      return n * 2;
    };
    expect(await eachLimit([1, 2, 4, 5, 6], 2, work)).toEqual([2, 4, 8, 10, 12]);
    expect(most).toBe(2);
    await expect(eachLimit([1, 2, 3, 4], 3, work)).rejects.toThrow('three');
    expect(running).toBe(0);
  });
});

describe('judgeStore (stasis doctor)', () => {
  const facts: StoreFacts = { url: 's3://bk/p', endpoint: 'http://rgw:7480', listError: null, probeError: null, skewMs: 1200, template: null };
  const statuses = (f: StoreFacts): string[] => judgeStore(f).map((check) => `${check.name}: ${check.status}`);

  test('all good', () => {
    expect(statuses(facts)).toEqual(['object store: ok', 'store write: ok', 'clock skew: ok']);
  });
  test('a store that cannot be listed fails and the write is not tried; a failed probe names the permission', () => {
    expect(statuses({ ...facts, listError: 'bucket bk does not exist at http://rgw:7480', probeError: undefined })).toEqual(['object store: FAIL', 'store write: skip', 'clock skew: ok']);
    const failed = judgeStore({ ...facts, probeError: 'access denied' })[1];
    expect(failed).toMatchObject({ status: 'FAIL', fix: expect.stringContaining('s3:PutObject') });
  });
  test('clock skew: a minute warns, 15 minutes fails (SigV4 refuses), and the direction is said', () => {
    expect(judgeStore({ ...facts, skewMs: 90_000 })[2]).toMatchObject({ status: 'warn', detail: 'this clock is 90 s behind the store\'s' });
    expect(judgeStore({ ...facts, skewMs: -16 * 60_000 })[2]).toMatchObject({ status: 'FAIL', detail: 'this clock is 960 s ahead of the store\'s' });
    expect(statuses({ ...facts, skewMs: null })[2]).toBe('clock skew: skip');
  });
  test('a template is listed read-only', () => {
    expect(statuses({ ...facts, template: { url: 's3://bk/t', listError: null } })[3]).toBe('template store: ok');
    expect(statuses({ ...facts, template: { url: 's3://bk/t', listError: 'access denied' } })[3]).toBe('template store: FAIL');
  });
});
