/**
 * `stasis doctor`'s object-store checks: the facts (a listing, a put/get/delete of a
 * probe object, the server's clock) are gathered at the edge; judgeStore is pure.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import invariant from 'tiny-invariant';
import { fail, ok, skip, warn, type Check } from '../commands/checks.js';
import type { Config } from '../config.js';
import { describeS3Error, endpointName, makeClient } from './client.js';
import { expandLocation, formatLocation, keyOf, type StoreLocation } from './location.js';
import { Bucket } from './objects.js';

export interface StoreFacts {
  readonly url: string;
  readonly endpoint: string;
  /** listing the prefix: endpoint, credentials, bucket and list permission at once; null = it worked */
  readonly listError: string | null;
  /** put, get and delete of a probe object; null = it worked, undefined = not tried */
  readonly probeError?: string | null;
  /** server clock minus ours, from the Date header of an answer; null = unknown */
  readonly skewMs: number | null;
  readonly template: { readonly url: string; readonly listError: string | null } | null;
}

const SKEW_WARN_MS = 60_000;
/** SigV4 refuses requests signed more than 15 minutes off the server's clock. */
const SKEW_FAIL_MS = 15 * 60_000;

/** Pure: the checks for STASIS_STORE (and STASIS_STORE_TEMPLATE). */
export function judgeStore(facts: StoreFacts): Check[] {
  const checks: Check[] = [];
  const where = `${facts.url} at ${facts.endpoint}`;
  checks.push(
    facts.listError === null
      ? ok('object store', `${where}: reachable, credentials accepted, bucket listed`)
      : fail('object store', `${where}: ${facts.listError}`, 'check STASIS_S3_ENDPOINT, AWS_REGION, the credentials (env, web identity, profile) and that the bucket exists'),
  );
  if (facts.probeError === undefined) checks.push(skip('store write', 'not tried: the store cannot be listed'));
  else if (facts.probeError === null) checks.push(ok('store write', 'put, get and delete of a probe object under the prefix worked'));
  else checks.push(fail('store write', facts.probeError, 'allow s3:PutObject, s3:GetObject and s3:DeleteObject on the prefix'));
  if (facts.skewMs === null) {
    checks.push(skip('clock skew', 'the store did not say its time'));
  } else {
    const seconds = Math.round(facts.skewMs / 1000);
    const detail = `this clock is ${Math.abs(seconds)} s ${seconds > 0 ? 'behind' : 'ahead of'} the store's`;
    const fix = 'sync the node clock (NTP): requests signed more than 15 minutes off are refused (RequestTimeTooSkewed)';
    checks.push(Math.abs(facts.skewMs) >= SKEW_FAIL_MS ? fail('clock skew', detail, fix) : Math.abs(facts.skewMs) >= SKEW_WARN_MS ? warn('clock skew', detail, fix) : ok('clock skew', detail));
  }
  if (facts.template !== null) {
    const { url, listError } = facts.template;
    checks.push(listError === null ? ok('template store', `${url}: listed (read-only)`) : fail('template store', `${url}: ${listError}`, 'allow s3:ListBucket and s3:GetObject on the template prefix'));
  }
  return checks;
}

/** Gathers the facts; never throws. */
export async function storeFacts(config: Config, env: Readonly<Record<string, string | undefined>> = process.env): Promise<StoreFacts> {
  const client = makeClient({ endpoint: config.s3Endpoint, env });
  const endpoint = endpointName(config.s3Endpoint, env);
  const expand = (location: StoreLocation): StoreLocation => expandLocation(location, hostname());
  invariant(config.store !== null, 'storeFacts needs STASIS_STORE');
  const own = expand(config.store);
  const bucket = new Bucket(client, own.bucket);
  const describe = (location: StoreLocation, error: unknown): string => describeS3Error(error, { bucket: location.bucket, endpoint });
  try {
    const listError = await bucket.list(own.prefix).then(
      () => null,
      (error: unknown) => describe(own, error),
    );
    const probeError = listError === null ? await probe(bucket, own).catch((error: unknown) => describe(own, error)) : undefined;
    const template = config.storeTemplate === null ? null : expand(config.storeTemplate);
    return {
      url: formatLocation(own),
      endpoint,
      listError,
      ...(probeError === undefined ? {} : { probeError }),
      skewMs: await serverSkew(config.s3Endpoint ?? `https://s3.${env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1'}.amazonaws.com`),
      template:
        template === null
          ? null
          : {
              url: formatLocation(template),
              listError: await new Bucket(client, template.bucket).list(template.prefix).then(
                () => null,
                (error: unknown) => describe(template, error),
              ),
            },
    };
  } finally {
    client.destroy();
  }
}

async function probe(bucket: Bucket, location: StoreLocation): Promise<string | null> {
  const key = keyOf(location, `.stasis-doctor-${randomBytes(6).toString('hex')}`);
  const body = randomBytes(64);
  await bucket.put(key, body);
  try {
    const back = await bucket.getBytes(key);
    return back.equals(body) ? null : `the probe object ${key} came back different`;
  } finally {
    await bucket.delete([key]);
  }
}

async function serverSkew(url: string): Promise<number | null> {
  try {
    const before = Date.now();
    const answer = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
    const after = Date.now();
    const date = answer.headers.get('date');
    // the header has whole seconds: half a second of it is rounding
    return date === null ? null : Date.parse(date) + 500 - (before + after) / 2;
  } catch {
    return null;
  }
}
